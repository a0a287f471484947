"""Python client for srsproxy, the spaced-repetition sidecar that speaks RESP.

    import srsproxy
    r = srsproxy.connect("127.0.0.1", 6380)          # or any redis.Redis
    srs = srsproxy.Client(r)
    srs.review("alice", "SEASON-2026", "q-101", correct=True, ms=3200)
    for item in srs.due("alice", "SEASON-2026").items: ...

Depends only on redis-py (4.3 or newer).
"""

from .client import Answer, Card, Client, DueItem, DueList, ReviewResult, session_review_ids
from .errors import *  # noqa: F401,F403 - the typed errors are part of the API
from .errors import SrsError, from_redis_error
from .resp3 import connect

__all__ = [
    "Answer", "Card", "Client", "DueItem", "DueList", "ReviewResult", "SrsError", "connect",
    "from_redis_error", "session_review_ids",
]
