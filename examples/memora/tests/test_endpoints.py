"""memora's endpoints against a real sidecar (cmd/srsproxy/python_test.go runs them).

test_endpoints runs with the sidecar's Redis up; test_degraded
(SRSPROXY_DEGRADED=1) after the Go test stopped that Redis: the same
player's session is then served from MariaDB with is_degraded true.
"""

import dataclasses
import json
import os
import sys
import time
import unittest
import uuid

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, ".."))
sys.path.insert(0, os.path.join(here, "..", "..", "..", "clients", "python"))

import srsproxy  # noqa: E402

import frappe_api  # noqa: E402  (imports without Frappe)
import memora_srs  # noqa: E402


def env():
    addr = os.environ.get("SRSPROXY_ADDR")
    if not addr:
        raise unittest.SkipTest("SRSPROXY_ADDR not set (run through go test ./cmd/srsproxy -run Python)")
    host, port = addr.rsplit(":", 1)
    return host, int(port), os.environ["SRSPROXY_SEASON"], os.environ["SRSPROXY_MEMORA_PLAYER"]


def connect(host, port, proto=2):
    return srsproxy.Client(srsproxy.connect(host, port, protocol=proto, decode_responses=True, socket_timeout=10))


class Endpoints(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.environ.get("SRSPROXY_DEGRADED"):
            raise unittest.SkipTest("the Redis is stopped: only test_degraded runs now")

    def setUp(self):
        host, port, self.season, self.shared_player = env()
        self.c = connect(host, port)
        self.player = "memora-" + uuid.uuid4().hex[:8]
        self.now = int(time.time() * 1000)

    def test_frappe_wrapper_imports_without_frappe(self):
        self.assertIsNone(frappe_api.frappe)
        self.assertIs(frappe_api.get_review_session.__name__, "get_review_session")
        with self.assertRaises(RuntimeError):
            frappe_api.get_review_session()

    def test_session_round_trip(self):
        empty = memora_srs.get_review_session(self.c, self.player, self.season)
        self.assertEqual(empty, {"questions": [], "is_degraded": False, "season": self.season, "total_due": 0})
        session = {
            "session_id": "s-" + uuid.uuid4().hex,
            "subject": "math",
            "answers": [
                {"question_id": "q1", "is_correct": False, "time_spent_ms": 3000},
                {"question_id": "q2", "is_correct": True, "time_spent_ms": 1500},
                {"question_id": "q3", "is_correct": True, "time_spent_ms": 9000},
            ],
        }
        at = self.now - 3600 * 1000  # an hour ago: the wrong answer's relearning step is due now
        out = memora_srs.submit_review_session(self.c, self.player, self.season, json.dumps(session), at=at)
        self.assertEqual(out["status"], "success", out)
        self.assertEqual(out["processed"], 3)
        self.assertEqual(out["remaining_items"], [])
        self.assertEqual(sum(out["new_stability_counts"].values()), 3)
        self.assertEqual(set(out["new_stability_counts"]), {"0", "1", "2", "3", "4"})
        # A resubmitted session (a retry after a timeout) changes nothing.
        def cards():  # retrievability is "now": left out
            return [dataclasses.replace(self.c.card(self.player, self.season, q), retrievability=0) for q in ("q1", "q2", "q3")]
        before = cards()
        again = memora_srs.submit_review_session(self.c, self.player, self.season, session, at=at)
        self.assertEqual(again["processed"], 3)
        self.assertEqual(cards(), before)

        got = memora_srs.get_review_session(self.c, self.player, self.season)
        self.assertFalse(got["is_degraded"])
        self.assertEqual(got["season"], self.season)
        ids = [q["question_id"] for q in got["questions"]]
        self.assertIn("q1", ids)
        self.assertEqual(got["total_due"], len(ids))
        q1 = got["questions"][ids.index("q1")]
        self.assertEqual((q1["subject"], q1["state"]), ("math", "learning"))
        self.assertEqual(memora_srs.get_review_session(self.c, self.player, self.season, subject="bio")["questions"], [])

    def test_topic_filter(self):
        at = self.now - 3600 * 1000
        for q, topic in (("t1", "algebra"), ("t2", "geometry")):
            self.c.review(self.player, self.season, q, 1, at=at, topic=topic, subject="math")
        got = memora_srs.get_review_session(self.c, self.player, self.season, topic_id="geometry")
        self.assertEqual([q["question_id"] for q in got["questions"]], ["t2"])

    def test_refused_answers(self):
        out = memora_srs.submit_review_session(self.c, self.player, "SEASON-1999",
                                               {"answers": [{"question_id": "x", "is_correct": True, "time_spent_ms": 1}]})
        self.assertEqual((out["status"], out["processed"], out["remaining_items"]), ("error", 0, []))
        self.assertTrue(out["errors"][0]["error"].startswith("NOSEASON"), out)

    def test_prepare_shared_player(self):
        """Cards for test_degraded: due now, and in MariaDB (drained) before Redis stops."""
        at = self.now - 3600 * 1000
        answers = [{"question_id": f"d{i}", "is_correct": False, "time_spent_ms": 2000} for i in range(5)]
        out = memora_srs.submit_review_session(self.c, self.shared_player, self.season,
                                               {"session_id": "shared", "answers": answers}, at=at)
        self.assertEqual(out["processed"], 5, out)
        got = memora_srs.get_review_session(self.c, self.shared_player, self.season)
        self.assertEqual(len(got["questions"]), 5)


class Degraded(unittest.TestCase):
    def test_degraded(self):
        if not os.environ.get("SRSPROXY_DEGRADED"):
            raise unittest.SkipTest("runs once the Go test stopped the sidecar's Redis (SRSPROXY_DEGRADED=1)")
        host, port, season, player = env()
        c = connect(host, port, proto=3)
        deadline = time.time() + 30
        got, last = None, None
        while time.time() < deadline:
            try:
                got = memora_srs.get_review_session(c, player, season)
                if got["is_degraded"]:
                    break
            except srsproxy.SrsError as e:  # CACHEDOWN/BUSY while the breaker opens
                last = e
            time.sleep(0.2)
        self.assertIsNotNone(got, last)
        self.assertTrue(got["is_degraded"], (got, last))
        self.assertEqual(sorted(q["question_id"] for q in got["questions"]), [f"d{i}" for i in range(5)])
        self.assertEqual(got["season"], season)


if __name__ == "__main__":
    unittest.main()
