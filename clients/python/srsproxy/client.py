"""The srsproxy client: SRS.DUE, SRS.CARD and SRS.REVIEW as Python calls."""

from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import redis.exceptions

from .errors import ArgumentError, SrsError, from_redis_error

# Review ids are 1-128 bytes (README, "Commands").
MAX_ID_LEN = 128

Millis = Union[int, _dt.datetime]


@dataclass(frozen=True)
class DueItem:
    """One due question of SRS.DUE."""

    question_id: str
    due: int  # unix ms
    state: str  # new | learning | review | relearning
    stability: float
    difficulty: float
    reps: int
    lapses: int
    subject: str = ""
    topic: str = ""
    stage: str = ""


@dataclass(frozen=True)
class DueList:
    """SRS.DUE's reply: the most overdue items first."""

    total_due: int
    degraded: bool  # served by Safe Mode (upstream Redis down): top N only
    season: str
    items: List[DueItem] = field(default_factory=list)


@dataclass(frozen=True)
class Card:
    """SRS.CARD's reply: one card's whole state."""

    question_id: str
    player: str
    season: str
    subject: str
    topic: str
    stage: str
    state: str
    step: int
    stability: float
    difficulty: float
    retrievability: float
    due: int
    last_review: int
    reps: int
    lapses: int


@dataclass(frozen=True)
class ReviewResult:
    """SRS.REVIEW's reply."""

    question_id: str
    due: int
    interval_days: int
    scheduled_minutes: int
    state: str
    stability: float
    difficulty: float
    retrievability: float
    reps: int
    lapses: int
    last_review: int
    review_id: str
    duplicate: bool


@dataclass(frozen=True)
class Answer:
    """One answer of a review session, in memora's shape."""

    question_id: str
    is_correct: bool
    time_spent_ms: int
    attempts: int = 1

    @classmethod
    def of(cls, a: Union["Answer", Mapping[str, Any]]) -> "Answer":
        if isinstance(a, Answer):
            return a
        try:
            return cls(question_id=str(a["question_id"]), is_correct=bool(a["is_correct"]),
                       time_spent_ms=int(a.get("time_spent_ms") or 0), attempts=int(a.get("attempts") or 1))
        except (KeyError, TypeError, ValueError) as e:
            raise ArgumentError(f"answer {a!r}: want question_id, is_correct, time_spent_ms ({e})") from None


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return "" if v is None else str(v)


def _int(v: Any) -> int:
    return int(v) if not isinstance(v, bytes) else int(v.decode())


def _float(v: Any) -> float:
    return float(v)


def _bool(v: Any) -> bool:
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, str):
        return v not in ("0", "", "false")
    return bool(v)


def _map(v: Any) -> Dict[str, Any]:
    """A RESP3 map or a RESP2 flat field/value array as a dict."""
    if isinstance(v, dict):
        return {_text(k): x for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        if len(v) % 2:
            raise SrsError(f"malformed reply: odd-length map {v!r}", prefix="ERR")
        return {_text(v[i]): v[i + 1] for i in range(0, len(v), 2)}
    raise SrsError(f"malformed reply: want a map, got {v!r}", prefix="ERR")


def _ms(at: Optional[Millis]) -> Optional[int]:
    if at is None:
        return None
    if isinstance(at, _dt.datetime):
        if at.tzinfo is None:
            raise ArgumentError("at: a datetime must carry its time zone")
        return int(at.timestamp() * 1000)
    return int(at)


def _due_item(v: Any) -> DueItem:
    m = _map(v)
    return DueItem(question_id=_text(m["question_id"]), due=_int(m["due"]), state=_text(m["state"]),
                   stability=_float(m["stability"]), difficulty=_float(m["difficulty"]), reps=_int(m["reps"]),
                   lapses=_int(m["lapses"]), subject=_text(m.get("subject")), topic=_text(m.get("topic")),
                   stage=_text(m.get("stage")))


def _due_list(v: Any) -> DueList:
    m = _map(v)
    return DueList(total_due=_int(m["total_due"]), degraded=_bool(m["degraded"]), season=_text(m["season"]),
                   items=[_due_item(x) for x in (m.get("items") or [])])


def _card(v: Any) -> Optional[Card]:
    if v is None:
        return None
    m = _map(v)
    return Card(question_id=_text(m["question_id"]), player=_text(m["player"]), season=_text(m["season"]),
                subject=_text(m["subject"]), topic=_text(m["topic"]), stage=_text(m["stage"]),
                state=_text(m["state"]), step=_int(m["step"]), stability=_float(m["stability"]),
                difficulty=_float(m["difficulty"]), retrievability=_float(m["retrievability"]),
                due=_int(m["due"]), last_review=_int(m["last_review"]), reps=_int(m["reps"]),
                lapses=_int(m["lapses"]))


def _review(v: Any) -> ReviewResult:
    m = _map(v)
    return ReviewResult(question_id=_text(m["question_id"]), due=_int(m["due"]),
                        interval_days=_int(m["interval_days"]), scheduled_minutes=_int(m["scheduled_minutes"]),
                        state=_text(m["state"]), stability=_float(m["stability"]),
                        difficulty=_float(m["difficulty"]), retrievability=_float(m["retrievability"]),
                        reps=_int(m["reps"]), lapses=_int(m["lapses"]), last_review=_int(m["last_review"]),
                        review_id=_text(m["review_id"]), duplicate=_bool(m["duplicate"]))


def session_review_ids(session_id: str, question_ids: Sequence[str]) -> List[str]:
    """The review ids of a session's answers, derived from session_id alone.

    The n-th answer (n ≥ 2) to the same question in one session gets "#n";
    ids longer than 128 bytes are shortened to the session id's first bytes
    and a SHA-256 of the whole. A retried session (same id, same answers)
    gets the same ids, so srsproxy recognises every answer as a duplicate.
    """
    if not session_id:
        raise ArgumentError("session_id must not be empty")
    seen: Dict[str, int] = {}
    out = []
    for q in question_ids:
        seen[q] = seen.get(q, 0) + 1
        rid = f"{session_id}:{q}" + (f"#{seen[q]}" if seen[q] > 1 else "")
        if len(rid.encode()) > MAX_ID_LEN:
            digest = hashlib.sha256(rid.encode()).hexdigest()[:32]
            rid = session_id.encode()[:MAX_ID_LEN - 33].decode("utf-8", errors="ignore") + ":" + digest
        out.append(rid)
    return out


class Client:
    """srsproxy over a redis-py client (RESP2 or RESP3, decoded or not).

    Every method raises an :class:`SrsError` subclass for an error the
    sidecar answered (mapped from its RESP prefix), and redis-py's
    ConnectionError/TimeoutError when it could not be reached.
    """

    def __init__(self, redis_client: Any):
        self.redis = redis_client

    def _call(self, *args: Any) -> Any:
        try:
            return self.redis.execute_command(*args)
        except redis.exceptions.RedisError as e:
            mapped = from_redis_error(e)
            if mapped is e:
                raise
            raise mapped from None

    def due(self, player: str, season: str, subject: Optional[str] = None, limit: int = 20,
            at: Optional[Millis] = None) -> DueList:
        """The player's due questions (due ≤ at, default now), most overdue first."""
        args: List[Any] = ["SRS.DUE", player, season]
        if subject:
            args += ["SUBJECT", subject]
        args += ["LIMIT", int(limit)]
        if at is not None:
            args += ["AT", _ms(at)]
        return _due_list(self._call(*args))

    def card(self, player: str, season: str, question: str) -> Optional[Card]:
        """One card's state, None for a card never reviewed."""
        return _card(self._call("SRS.CARD", player, season, question))

    @staticmethod
    def _review_args(player: str, season: str, question: str, grade: Optional[int], correct: Optional[bool],
                     ms: Optional[int], attempts: Optional[int], at: Optional[Millis], review_id: Optional[str],
                     subject: Optional[str], topic: Optional[str], stage: Optional[str],
                     duration: Optional[int]) -> List[Any]:
        args: List[Any] = ["SRS.REVIEW", player, season, question]
        if (grade is None) == (correct is None):
            raise ArgumentError("give either grade (1-4) or correct=… with ms=…")
        if grade is not None:
            args.append(int(grade))
            if ms is not None or attempts is not None:
                raise ArgumentError("ms and attempts go with correct=…; use duration with a grade")
        else:
            if ms is None:
                raise ArgumentError("correct=… needs ms=… (the answer time)")
            args += ["CORRECT", 1 if correct else 0, "MS", int(ms)]
            if attempts is not None:
                args += ["ATTEMPTS", int(attempts)]
        for name, value in (("AT", _ms(at)), ("ID", review_id), ("SUBJECT", subject), ("TOPIC", topic),
                            ("STAGE", stage), ("DURATION", duration)):
            if value is not None and value != "":
                args += [name, value]
        return args

    def review(self, player: str, season: str, question: str, grade: Optional[int] = None, *,
               correct: Optional[bool] = None, ms: Optional[int] = None, attempts: Optional[int] = None,
               at: Optional[Millis] = None, review_id: Optional[str] = None, subject: Optional[str] = None,
               topic: Optional[str] = None, stage: Optional[str] = None,
               duration: Optional[int] = None) -> ReviewResult:
        """Apply one answer: a grade (1 Again … 4 Easy) or correct/ms/attempts.

        Retries should send the same review_id and at (README, SRS.REVIEW).
        """
        return _review(self._call(*self._review_args(player, season, question, grade, correct, ms, attempts,
                                                     at, review_id, subject, topic, stage, duration)))

    def review_session(self, player: str, season: str, answers: Iterable[Union[Answer, Mapping[str, Any]]],
                       session_id: Optional[str] = None, at: Optional[Millis] = None,
                       subject: Optional[str] = None,
                       topic: Optional[str] = None) -> List[Union[ReviewResult, SrsError]]:
        """Send a session's answers ({question_id, is_correct, time_spent_ms}) in one pipeline.

        With session_id every review id derives from it (session_review_ids),
        so sending the same session again doubles nothing; pass the same at
        as well when retrying. Returns one ReviewResult or SrsError per
        answer, in order; a connection failure raises.
        """
        items = [Answer.of(a) for a in answers]
        ids: List[Optional[str]] = [None] * len(items)
        if session_id is not None:
            ids = list(session_review_ids(session_id, [a.question_id for a in items]))
        at_ms = _ms(at)
        pipe = self.redis.pipeline(transaction=False)
        for a, rid in zip(items, ids):
            pipe.execute_command(*self._review_args(player, season, a.question_id, None, a.is_correct,
                                                    a.time_spent_ms, a.attempts, at_ms, rid, subject, topic,
                                                    None, None))
        out: List[Union[ReviewResult, SrsError]] = []
        try:
            replies = pipe.execute(raise_on_error=False)
        except redis.exceptions.RedisError as e:
            mapped = from_redis_error(e)
            if mapped is e:
                raise
            raise mapped from None
        for r in replies:
            if isinstance(r, BaseException):
                mapped = from_redis_error(r)
                if not isinstance(mapped, SrsError):
                    raise mapped
                out.append(mapped)
            else:
                out.append(_review(r))
        return out
