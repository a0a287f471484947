"""RESP3 connections for redis-py releases that have none (before 5.0).

redis-py 5 speaks RESP3 itself (``redis.Redis(protocol=3)``). Debian's 4.3
only parses RESP2, so :func:`connect` gives it a parser for the RESP3 types
srsproxy sends (maps, doubles, booleans, nulls, big numbers, verbatim
strings, sets) and a connection that says ``HELLO 3`` after it connects.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.connection import Connection, PythonParser
from redis.exceptions import ConnectionError, InvalidResponse

_RESP3_TYPES = b"-+:$*%~,#_(=!>|"


def _native_resp3() -> bool:
    major = int(redis.__version__.split(".")[0])
    return major >= 5


class Resp3Parser(PythonParser):
    """PythonParser that also reads the RESP3 types."""

    def read_response(self, disable_decoding: bool = False) -> Any:  # noqa: C901 - one branch per type
        raw = self._buffer.readline()
        if not raw:
            raise ConnectionError("Connection closed by server.")
        byte, rest = raw[:1], raw[1:]
        if byte not in _RESP3_TYPES:
            raise InvalidResponse(f"Protocol Error: {raw!r}")
        if byte in (b"-", b"!"):
            if byte == b"!":
                rest = self._buffer.read(int(rest))
            error = self.parse_error(rest.decode("utf-8", errors="replace"))
            if isinstance(error, ConnectionError):
                raise error
            return error
        if byte == b"_":
            return None
        if byte == b"#":
            return rest == b"t"
        if byte == b",":
            return float(rest)
        if byte in (b":", b"("):
            return int(rest)
        if byte in (b"$", b"="):
            n = int(rest)
            if n == -1:
                return None
            data = self._buffer.read(n)
            if byte == b"=":
                data = data[4:]  # "txt:" / "mkd:"
            return data if disable_decoding else self.encoder.decode(data)
        if byte == b"+":
            return rest if disable_decoding else self.encoder.decode(rest)
        n = int(rest)
        if n == -1:
            return None
        if byte == b"%":
            out = {}
            for _ in range(n):
                k = self.read_response(disable_decoding)
                out[k] = self.read_response(disable_decoding)
            return out
        if byte == b"|":  # attributes precede the reply they describe
            for _ in range(2 * n):
                self.read_response(disable_decoding)
            return self.read_response(disable_decoding)
        items = [self.read_response(disable_decoding) for _ in range(n)]
        if byte == b"~":
            return items  # a set, kept as a list: members may be unhashable
        return items  # "*" and ">" (push)


class Resp3Connection(Connection):
    """A connection that switches to RESP3 with HELLO 3 once connected."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs["parser_class"] = Resp3Parser
        super().__init__(*args, **kwargs)

    def on_connect(self) -> None:
        super().on_connect()
        self.send_command("HELLO", "3")
        reply = self.read_response()
        if isinstance(reply, Exception):
            raise reply


def connect(host: str = "127.0.0.1", port: int = 6380, protocol: int = 2, **kwargs: Any) -> "redis.Redis":
    """A redis.Redis for the sidecar at host:port speaking RESP2 or RESP3.

    Other keyword arguments go to redis.Redis (password, socket_timeout, …).
    """
    if protocol not in (2, 3):
        raise ValueError("protocol must be 2 or 3")
    if protocol == 2:
        return redis.Redis(host=host, port=port, **kwargs)
    if _native_resp3():
        return redis.Redis(host=host, port=port, protocol=3, **kwargs)
    pool = redis.ConnectionPool(connection_class=Resp3Connection, host=host, port=port, **kwargs)
    return redis.Redis(connection_pool=pool)
