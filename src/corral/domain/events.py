"""The normalized event vocabulary every runtime maps into (research/runtimes.md §8.3).

An adapter's mapping produces :class:`EventDraft` values; the session engine stamps them with the
per-session ``seq``, the turn id and a timestamp and stores them as :class:`Event`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    SESSION_CREATED = "session.created"
    SESSION_STATE = "session.state"
    TURN_STARTED = "turn.started"
    TURN_COMPLETED = "turn.completed"
    MESSAGE_DELTA = "message.delta"
    MESSAGE_COMPLETED = "message.completed"
    TOOL_CALL = "tool.call"
    TOOL_RESULT = "tool.result"
    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_RESOLVED = "approval.resolved"
    INPUT_REQUESTED = "input.requested"
    INPUT_RESOLVED = "input.resolved"
    USAGE = "usage"
    ERROR = "error"
    #: Native events may be missing here: the runtime's stream broke and it keeps no history or
    #: cursor to backfill from. Data: {"reason", "native_session_id"?}. Never silent.
    STREAM_GAP = "stream.gap"
    GOVERNANCE_DECISION = "governance.decision"
    #: A budget's spend crossed its soft threshold (data: budget_id, scope, soft_percent).
    BUDGET_THRESHOLD = "budget.threshold"
    SUBAGENT_STARTED = "subagent.started"
    SUBAGENT_COMPLETED = "subagent.completed"


class StopReason(StrEnum):
    END_TURN = "end_turn"
    REQUIRES_ACTION = "requires_action"
    CANCELLED = "cancelled"
    MAX_TOKENS = "max_tokens"
    BUDGET_REACHED = "budget_reached"
    RETRIES_EXHAUSTED = "retries_exhausted"
    ERROR = "error"
    # Governance stopped the turn (runaway guards, a denied tool, a kill switch).
    TOOL_CALL_LIMIT = "tool_call_limit"
    COST_LIMIT = "cost_limit"
    TIME_LIMIT = "time_limit"
    LOOP_DETECTED = "loop_detected"
    POLICY_DENIED = "policy_denied"
    KILLED = "killed"


class ApprovalDecision(StrEnum):
    ALLOW_ONCE = "allow_once"
    ALLOW_SESSION = "allow_session"
    ALLOW_ALWAYS = "allow_always"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class EventDraft:
    """A normalized event before Corral has ordered it.

    ``native_id`` is the dedupe key: the same native occurrence always maps to the same id, so a
    redelivered or backfilled native event is stored once. ``None`` means "Corral-originated".
    """

    type: EventType
    data: dict[str, Any] = field(default_factory=dict)
    native_id: str | None = None
    native_type: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    session_id: str
    seq: int
    type: str
    ts: datetime
    data: dict[str, Any]
    native_id: str | None
    native_type: str | None
    turn_id: str | None
    trace_id: str | None


def approval_resolved_native_id(native_approval_id: str) -> str:
    """The dedupe key of an approval's resolution, whoever reports it first.

    Corral records a resolution when a human answers; the runtime then echoes it. Both use this
    key, so the log holds the resolution once.
    """
    return f"approval-resolved:{native_approval_id}"


def turn_end_native_id(turn_id: str) -> str:
    """The dedupe key of a turn's end, whether the runtime's stream or a reconciliation saw it."""
    return f"turn-end:{turn_id}"


def input_resolved_native_id(request_id: str) -> str:
    """The dedupe key of the answer to an ``input.requested``: one answer per request."""
    return f"input-resolved:{request_id}"
