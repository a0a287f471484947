"""memora's two review-session endpoints over srsproxy, as plain functions.

memora (Frappe) serves a student's review session and takes its answers back.
These functions keep memora's request and response shapes and do the work
through the srsproxy Python client; frappe_api.py wraps them as whitelisted
Frappe methods. They take the client, the player and the season as
arguments, so they run (and are tested) without Frappe.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any, Dict, List, Mapping, Optional, Union

import srsproxy

# SRS.DUE returns at most 50 items; a topic filter is applied to those.
MAX_DUE = 50


def _iso(ms: int) -> str:
    return _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc).isoformat()


def memora_level(r: srsproxy.ReviewResult) -> int:
    """The tracker level (0-4: intervals 1, 3, 7, 14 days) closest to a review's result.

    Cards in a learning or relearning step (interval 0) are level 0; then
    up to 1 day → 1, up to 3 → 2, up to 7 → 3, longer → 4.
    """
    d = r.interval_days
    if r.state in ("learning", "relearning") or d <= 0:
        return 0
    if d <= 1:
        return 1
    if d <= 3:
        return 2
    if d <= 7:
        return 3
    return 4


def get_review_session(client: srsproxy.Client, player: str, season: str, subject: Optional[str] = None,
                       topic_id: Optional[str] = None, limit: int = 20, at: Optional[int] = None) -> Dict[str, Any]:
    """memora's get_review_session: the student's due questions, most overdue first.

    Returns {"questions": [...], "is_degraded": bool, "season": str,
    "total_due": int}. is_degraded is true when srsproxy served the list
    from MariaDB in Safe Mode (its cache is down): then the list is only the
    most urgent few, and the app should say so. topic_id filters the first
    50 due items (SRS.DUE filters by subject only).
    """
    due = client.due(player, season, subject=subject, limit=MAX_DUE if topic_id else limit, at=at)
    items = due.items
    if topic_id:
        items = [i for i in items if i.topic == topic_id]
    items = items[:limit]
    return {
        "questions": [
            {
                "question_id": i.question_id,
                "subject": i.subject,
                "topic": i.topic,
                "next_review_date": _iso(i.due),
                "state": i.state,
                "stability": i.stability,
            }
            for i in items
        ],
        "is_degraded": due.degraded,
        "season": due.season,
        "total_due": due.total_due,
    }


def submit_review_session(client: srsproxy.Client, player: str, season: str,
                          session_data: Union[str, Mapping[str, Any]], at: Optional[int] = None) -> Dict[str, Any]:
    """memora's submit_review_session: apply a session's answers in one pipeline.

    session_data (a dict or its JSON, as Frappe passes it):
    {"session_id": str (optional), "answers": [{"question_id", "is_correct",
    "time_spent_ms"}, ...], "subject": optional, "topic": optional}. With a
    session_id a resubmitted session is recognised answer by answer and
    changes nothing.

    Returns {"status": "success" | "partial" | "error", "processed": n,
    "remaining_items": [answers to submit again later (the sidecar asked for
    a retry)], "errors": [{"question_id", "error"} refused for good],
    "new_stability_counts": {"0": n, …, "4": n} (memora levels after the
    session, see memora_level)}.
    """
    if isinstance(session_data, (str, bytes)):
        session_data = json.loads(session_data)
    answers = list(session_data.get("answers") or [])
    results = client.review_session(player, season, answers, session_id=session_data.get("session_id"), at=at,
                                    subject=session_data.get("subject"), topic=session_data.get("topic"))
    counts = {str(level): 0 for level in range(5)}
    remaining: List[Any] = []
    refused: List[Dict[str, str]] = []
    processed = 0
    for answer, r in zip(answers, results):
        if isinstance(r, srsproxy.ReviewResult):
            processed += 1
            counts[str(memora_level(r))] += 1
        elif r.retryable:
            remaining.append(answer)
        else:
            refused.append({"question_id": str(answer.get("question_id")), "error": str(r)})
    status = "success"
    if processed < len(answers):
        status = "partial" if processed else "error"
    return {
        "status": status,
        "processed": processed,
        "remaining_items": remaining,
        "errors": refused,
        "new_stability_counts": counts,
    }
