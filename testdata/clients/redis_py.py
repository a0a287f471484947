#!/usr/bin/python3
"""redis-py with its default options: one 50-review pipeline (redis-py's
default pipeline is a MULTI/EXEC transaction), SRS.DUE, and an unknown command
followed by a good one on the same connection. Prints a JSON report for
cmd/srsproxy/clients_test.go, or exits non-zero with a message.

Usage: /usr/bin/python3 redis_py.py host:port season [player [base_ms]]

Run it with Debian's python3 and python3-redis (apt-get install python3-redis).
Keep the plan in step with reviewPlan in clients_test.go.
"""
import json
import sys
import time


def fail(msg):
    sys.stderr.write(msg + "\n")
    sys.exit(1)


try:
    import redis
except ImportError as e:
    fail("redis-py is not installed: apt-get install python3-redis (%s)" % e)


def plan(player, season, base):
    """Ten questions reviewed five times, one minute apart; the last round is
    Again for even questions and Easy for odd ones."""
    cmds = []
    for i in range(50):
        k, rnd = i % 10, i // 10
        grade = 3 if rnd < 4 else (1 if k % 2 == 0 else 4)
        cmds.append(["SRS.REVIEW", player, season, "q-%02d" % k, str(grade),
                     "AT", str(base + i * 60000), "ID", "%s-r-%d" % (player, i),
                     "SUBJECT", "math"])
    return cmds


def value(v):
    return v.decode() if isinstance(v, bytes) else v


def to_map(v):
    """A RESP2 map reply is a flat field/value list; "items" nests them."""
    if v is None:
        return None
    if isinstance(v, dict):
        pairs = list(v.items())
    elif isinstance(v, list):
        pairs = list(zip(v[0::2], v[1::2]))
    else:
        raise ValueError("not a map reply: %r" % (v,))
    out = {}
    for k, x in pairs:
        k = value(k)
        out[k] = [to_map(i) for i in x] if k == "items" else value(x)
    return out


def types_of(review):
    m = to_map(review)
    return {
        "map": "map" if isinstance(review, dict) else "array",
        "duplicate": "bool" if isinstance(m["duplicate"], bool) else "int",
        "stability": "double" if isinstance(m["stability"], float) else "string",
    }


def main(argv):
    if len(argv) < 2:
        fail("usage: /usr/bin/python3 redis_py.py host:port season [player [base_ms]]")
    host, _, port = argv[0].rpartition(":")
    season = argv[1]
    player = argv[2] if len(argv) > 2 else "py-player"
    base = int(argv[3]) if len(argv) > 3 else int(time.time() * 1000) - 6 * 3600 * 1000

    r = redis.Redis(host=host, port=int(port))
    report = {"client": "redis-py %s" % redis.__version__}

    pipe = r.pipeline()
    for cmd in plan(player, season, base):
        pipe.execute_command(*cmd)
    replies = pipe.execute()
    report["reviews"] = [to_map(x) for x in replies]
    report["types"] = types_of(replies[0])

    report["due"] = to_map(r.execute_command("SRS.DUE", player, season))

    report["client_info_before"] = value(r.execute_command("CLIENT", "INFO"))
    try:
        r.execute_command("SRS.NOPE", player)
        report["unknown_error"] = ""
    except redis.exceptions.ResponseError as e:
        # redis-py drops the "ERR " code from the message; keep the class.
        report["unknown_error"] = "%s: %s" % (type(e).__name__, e)
    report["after"] = to_map(r.execute_command("SRS.CARD", player, season, "q-00"))
    report["client_info_after"] = value(r.execute_command("CLIENT", "INFO"))
    r.close()
    print(json.dumps(report))


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Exception as e:  # any failure is a message and a non-zero exit
        fail("redis-py: %s: %s" % (type(e).__name__, e))
