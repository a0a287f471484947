"""Typed errors for the RESP error prefixes srsproxy answers with.

Every error the sidecar sends starts with a prefix (commands/errors.go):
``ERR`` for a bad argument (the message names it), ``NOSEASON``,
``STOREDOWN`` and so on. redis-py raises them all as ``ResponseError`` (and
strips ``ERR``); :func:`from_redis_error` turns one into the class below that
matches its prefix, so an app can ``except StoreDownError`` or check
``err.retryable``.
"""

from __future__ import annotations

from typing import Dict, Optional, Type

import redis.exceptions


class SrsError(Exception):
    """An error answered by srsproxy.

    ``prefix`` is the RESP error prefix ("ERR", "STOREDOWN", …), ``message``
    the rest of the line. ``retryable`` says whether the same request may
    simply be sent again later (nothing was done, or it is safe to repeat
    with the same review id).
    """

    prefix = ""
    retryable = False

    def __init__(self, message: str, prefix: Optional[str] = None):
        super().__init__(message)
        self.message = message
        if prefix is not None:
            self.prefix = prefix

    def __str__(self) -> str:
        return f"{self.prefix} {self.message}".strip()


class ArgumentError(SrsError):
    """ERR: a bad argument; the message names it."""

    prefix = "ERR"


class InternalError(SrsError):
    """ERR internal error: the sidecar failed; its log has the details."""

    prefix = "ERR"


class NoSeasonError(SrsError):
    """NOSEASON: the season does not exist."""

    prefix = "NOSEASON"


class SeasonInactiveError(SrsError):
    """SEASONINACTIVE: the season exists but is not active."""

    prefix = "SEASONINACTIVE"


class SeasonArchivedError(SrsError):
    """SEASONARCHIVED: the season is archived; it takes no reviews or due reads."""

    prefix = "SEASONARCHIVED"


class SeasonExistsError(SrsError):
    prefix = "SEASONEXISTS"


class BadSeasonError(SrsError):
    """BADSEASON: the season name does not match ^SEASON-\\d{4}(-[A-Z0-9_]+)?$."""

    prefix = "BADSEASON"


class StaleReviewError(SrsError):
    """STALEREVIEW: AT is before the card's last review and the id is not in the log."""

    prefix = "STALEREVIEW"


class FutureReviewError(SrsError):
    prefix = "FUTUREREVIEW"


class QueueFullError(SrsError):
    """QUEUEFULL: the sidecar's local queue is at its cap; nothing was recorded."""

    prefix = "QUEUEFULL"
    retryable = True


class CacheDownError(SrsError):
    prefix = "CACHEDOWN"
    retryable = True


class StoreDownError(SrsError):
    """STOREDOWN: the request needs MariaDB and it does not answer; retry later."""

    prefix = "STOREDOWN"
    retryable = True


class TryAgainError(SrsError):
    """TRYAGAIN: overloaded or contended; nothing was done, retry shortly."""

    prefix = "TRYAGAIN"
    retryable = True


class UnconfirmedError(SrsError):
    """UNCONFIRMED: the review is queued and will be stored; retry with the same id for its result."""

    prefix = "UNCONFIRMED"
    retryable = True


class BusyError(SrsError):
    """BUSY: Safe Mode's rate limit; the message says when to retry."""

    prefix = "BUSY"
    retryable = True


class MisconfError(SrsError):
    """MISCONF: the sidecar's queue disk is full or failing; nothing was recorded."""

    prefix = "MISCONF"
    retryable = True


class NoPermError(SrsError):
    prefix = "NOPERM"


class NoAuthError(SrsError):
    prefix = "NOAUTH"


class SeasonActiveError(SrsError):
    prefix = "SEASONACTIVE"


class NotArchivedError(SrsError):
    prefix = "NOTARCHIVED"


class NotEligibleError(SrsError):
    prefix = "NOTELIGIBLE"


class ConfirmError(SrsError):
    prefix = "CONFIRM"


class NoJobError(SrsError):
    prefix = "NOJOB"


_BY_PREFIX: Dict[str, Type[SrsError]] = {
    c.prefix: c
    for c in (
        ArgumentError, NoSeasonError, SeasonInactiveError, SeasonArchivedError, SeasonExistsError,
        BadSeasonError, StaleReviewError, FutureReviewError, QueueFullError, CacheDownError,
        StoreDownError, TryAgainError, UnconfirmedError, BusyError, MisconfError, NoPermError,
        NoAuthError, SeasonActiveError, NotArchivedError, NotEligibleError, ConfirmError, NoJobError,
    )
}


def from_redis_error(err: BaseException) -> BaseException:
    """The SrsError for a redis-py error answered by the server.

    Connection and timeout errors are returned unchanged (they are not
    answers). redis-py keeps every prefix in the message but ERR's (which it
    strips) and maps NOAUTH/NOPERM to classes of its own; a message without a
    known prefix is an ERR.
    """
    if isinstance(err, SrsError):
        return err
    if isinstance(err, redis.exceptions.NoPermissionError):
        return NoPermError(str(err))
    if isinstance(err, redis.exceptions.AuthenticationError):
        return NoAuthError(str(err))
    if not isinstance(err, redis.exceptions.ResponseError):
        return err
    text = str(err)
    head, _, rest = text.partition(" ")
    cls = _BY_PREFIX.get(head)
    if cls is not None and head != "ERR":
        return cls(rest)
    if head == "ERR":
        text = rest
    if text == "internal error":
        return InternalError(text)
    return ArgumentError(text)
