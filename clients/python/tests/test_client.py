"""Tests of the srsproxy Python client against a real sidecar.

The Go test cmd/srsproxy/python_test.go starts the sidecar and runs
``python3 -m unittest`` here with SRSPROXY_ADDR (host:port) and
SRSPROXY_SEASON (an active season) set. The unit tests at the end need no
server.
"""

import os
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import redis  # noqa: E402
import redis.exceptions  # noqa: E402

import srsproxy  # noqa: E402
from srsproxy import errors  # noqa: E402


def server():
    addr = os.environ.get("SRSPROXY_ADDR")
    if not addr:
        raise unittest.SkipTest("SRSPROXY_ADDR not set (run through go test ./cmd/srsproxy -run Python)")
    host, port = addr.rsplit(":", 1)
    return host, int(port), os.environ["SRSPROXY_SEASON"]


class ClientTests:
    """Run against the sidecar once per protocol (subclasses set PROTO, DECODE)."""

    PROTO = 2
    DECODE = True

    def setUp(self):
        host, port, self.season = server()
        self.r = srsproxy.connect(host, port, protocol=self.PROTO, decode_responses=self.DECODE, socket_timeout=10)
        self.srs = srsproxy.Client(self.r)
        self.player = f"py-{self.PROTO}-{int(self.DECODE)}-{uuid.uuid4().hex[:8]}"
        self.now = int(time.time() * 1000)

    def tearDown(self):
        self.r.close()

    def test_protocol(self):
        info = self.r.execute_command("CLIENT", "INFO")
        info = info.decode() if isinstance(info, bytes) else info
        self.assertIn(f"resp={self.PROTO}", info)

    def test_review_card_due(self):
        at = self.now - 3 * 86400000
        r = self.srs.review(self.player, self.season, "q1", 4, at=at, review_id="r1", subject="math")
        self.assertIsInstance(r, srsproxy.ReviewResult)
        self.assertEqual((r.question_id, r.state, r.reps, r.review_id, r.duplicate), ("q1", "review", 1, "r1", False))
        self.assertIsInstance(r.stability, float)
        again = self.srs.review(self.player, self.season, "q1", 4, at=at, review_id="r1", subject="math")
        self.assertTrue(again.duplicate)
        self.assertEqual(again.due, r.due)

        w = self.srs.review(self.player, self.season, "q2", correct=False, ms=9000, at=at, review_id="r2", subject="bio")
        self.assertEqual((w.state, w.reps), ("learning", 1))

        c = self.srs.card(self.player, self.season, "q1")
        self.assertIsInstance(c, srsproxy.Card)
        self.assertEqual((c.player, c.season, c.subject, c.state, c.due, c.last_review, c.reps),
                         (self.player, self.season, "math", "review", r.due, at, 1))
        self.assertAlmostEqual(c.stability, r.stability)
        self.assertIsNone(self.srs.card(self.player, self.season, "never"))

        due = self.srs.due(self.player, self.season, at=self.now)
        self.assertIsInstance(due, srsproxy.DueList)
        self.assertEqual((due.total_due, due.degraded, due.season), (1, False, self.season))
        self.assertEqual([i.question_id for i in due.items], ["q2"])
        self.assertIsInstance(due.items[0], srsproxy.DueItem)
        self.assertEqual(due.items[0].subject, "bio")
        self.assertEqual(self.srs.due(self.player, self.season, subject="math", at=self.now).total_due, 0)

    def test_errors(self):
        with self.assertRaises(srsproxy.NoSeasonError) as cm:
            self.srs.due(self.player, "SEASON-1999")
        self.assertEqual(cm.exception.prefix, "NOSEASON")
        self.assertFalse(cm.exception.retryable)
        with self.assertRaises(srsproxy.ArgumentError) as cm:
            self.srs.review(self.player, self.season, "q1", 7)
        self.assertIn("grade", str(cm.exception))
        with self.assertRaises(srsproxy.ArgumentError):
            self.srs.due(self.player, self.season, limit=500)
        with self.assertRaises(srsproxy.ArgumentError):
            self.srs.review(self.player, self.season, "q1")  # neither grade nor correct
        with self.assertRaises(srsproxy.StaleReviewError):
            self.srs.review(self.player, self.season, "qs", 3, at=self.now - 1000, review_id="s1")
            self.srs.review(self.player, self.season, "qs", 3, at=self.now - 90000, review_id="s0")
        # The connection is still usable after errors.
        self.assertIsNone(self.srs.card(self.player, self.season, "nothing"))

    def test_review_session(self):
        answers = [
            {"question_id": "a", "is_correct": True, "time_spent_ms": 1500},
            {"question_id": "b", "is_correct": False, "time_spent_ms": 4000},
            {"question_id": "c", "is_correct": True, "time_spent_ms": 8000},
            {"question_id": "a", "is_correct": True, "time_spent_ms": 1200},
        ]
        sid = "sess-" + uuid.uuid4().hex
        at = self.now - 60000
        first = self.srs.review_session(self.player, self.season, answers, session_id=sid, at=at)
        self.assertEqual(len(first), 4)
        for r in first:
            self.assertIsInstance(r, srsproxy.ReviewResult, r)
            self.assertFalse(r.duplicate)
        self.assertEqual([r.review_id for r in first], srsproxy.session_review_ids(sid, ["a", "b", "c", "a"]))
        self.assertEqual(first[3].reps, 2)  # "a" answered twice
        retry = self.srs.review_session(self.player, self.season, answers, session_id=sid, at=at)
        self.assertTrue(all(r.duplicate for r in retry), retry)
        self.assertEqual([r.due for r in retry], [r.due for r in first])
        self.assertEqual(self.srs.card(self.player, self.season, "a").reps, 2)

        # A bad answer fails alone; the others are applied.
        mixed = self.srs.review_session(self.player, "SEASON-1999", answers[:1]) + \
            self.srs.review_session(self.player, self.season, [{"question_id": "d", "is_correct": True, "time_spent_ms": 100}])
        self.assertIsInstance(mixed[0], srsproxy.NoSeasonError)
        self.assertIsInstance(mixed[1], srsproxy.ReviewResult)


class Resp2(ClientTests, unittest.TestCase):
    PROTO = 2


class Resp2Bytes(ClientTests, unittest.TestCase):
    PROTO = 2
    DECODE = False


class Resp3(ClientTests, unittest.TestCase):
    PROTO = 3


class Resp3Bytes(ClientTests, unittest.TestCase):
    PROTO = 3
    DECODE = False


class Units(unittest.TestCase):
    """No server needed."""

    def test_error_prefixes(self):
        cases = {
            "STOREDOWN store unavailable": (errors.StoreDownError, True),
            "UNCONFIRMED the review is queued": (errors.UnconfirmedError, True),
            "TRYAGAIN sidecar overloaded; retry in 10ms": (errors.TryAgainError, True),
            "BUSY safe mode: retry in 29 seconds": (errors.BusyError, True),
            "MISCONF queue disk full: /data/queue": (errors.MisconfError, True),
            "QUEUEFULL queue full": (errors.QueueFullError, True),
            "SEASONARCHIVED season SEASON-2025 is archived": (errors.SeasonArchivedError, False),
            "NOSEASON unknown season": (errors.NoSeasonError, False),
            "STALEREVIEW too old": (errors.StaleReviewError, False),
            "grade must be 1-4": (errors.ArgumentError, False),  # redis-py strips ERR
            "internal error": (errors.InternalError, False),
        }
        for text, (cls, retry) in cases.items():
            e = errors.from_redis_error(redis.exceptions.ResponseError(text))
            self.assertIs(type(e), cls, text)
            self.assertEqual(e.retryable, retry, text)
            self.assertIsInstance(e, errors.SrsError)
        self.assertIsInstance(errors.from_redis_error(redis.exceptions.NoPermissionError("no")), errors.NoPermError)
        conn = redis.exceptions.ConnectionError("refused")
        self.assertIs(errors.from_redis_error(conn), conn)

    def test_session_ids(self):
        ids = srsproxy.session_review_ids("s1", ["q", "q", "r"])
        self.assertEqual(ids, ["s1:q", "s1:q#2", "s1:r"])
        long = srsproxy.session_review_ids("x" * 100, ["y" * 100, "y" * 100])
        self.assertTrue(all(len(i.encode()) <= 128 for i in long))
        self.assertNotEqual(long[0], long[1])
        self.assertEqual(long, srsproxy.session_review_ids("x" * 100, ["y" * 100, "y" * 100]))
        with self.assertRaises(errors.ArgumentError):
            srsproxy.session_review_ids("", ["q"])

    def test_bad_answer(self):
        with self.assertRaises(errors.ArgumentError):
            srsproxy.Answer.of({"is_correct": True})


if __name__ == "__main__":
    unittest.main()
