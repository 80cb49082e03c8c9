"""Governance decisions -> spans: pure mapping (the caller picks the ids and the parent).

A decision is a ``decide {act}`` span carrying the outcome, its stable code and reason, the
policy (id, version) and governance epoch it was made under, and the budget it reserved.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from corral.domain.governance import Decision, DecisionRequest
from corral.telemetry import semconv as sc
from corral.telemetry.spans import Attributes, SpanKind, SpanRecord, SpanStatus, decision_attributes


def reserved_of(reservation: Any) -> tuple[int, list[str]] | None:
    """(micro-dollars reserved, budget accounts) of a decision's reservation, if any.

    The reservation is the ledger's (``domain`` types it as ``Any``): each budget it draws on
    is one part reserving the same worst-case cost.
    """
    parts = [p for p in getattr(reservation, "parts", ()) if str(p.account).startswith("budget:")]
    if not parts:
        return None
    return max(int(p.amount) for p in parts), [str(p.account) for p in parts]


def attributes_of(decision: Decision) -> Attributes:
    """The decision as attributes: on its own span, and on the span of what it is about."""
    return decision_attributes(
        outcome=decision.outcome.value, code=decision.code, reason=decision.reason,
        policy_id=decision.policy_id, policy_version=decision.policy_version,
        scope=decision.scope, epoch=decision.epoch,
    )  # fmt: skip


def decision_span(
    request: DecisionRequest,
    decision: Decision,
    *,
    decided: Attributes,
    start: datetime,
    end: datetime,
    trace_id: str,
    span_id: str,
    parent_id: str | None,
    turn_id: str | None,
) -> SpanRecord:
    attrs: Attributes = {sc.DECISION_ACT: request.act.value, **decided}
    session_id = request.subject.session_id
    if session_id:
        attrs[sc.CONVERSATION_ID] = attrs[sc.SESSION_ID] = session_id
    if turn_id:
        attrs[sc.TURN_ID] = turn_id
    if request.tool is not None:
        attrs[sc.TOOL_NAME] = request.tool.name
    if request.model:
        attrs[sc.REQUEST_MODEL] = request.model
    if request.runtime_kind:
        attrs[sc.RUNTIME_KIND] = request.runtime_kind
    reserved = reserved_of(decision.reservation)
    if reserved is not None:
        attrs[sc.BUDGET_RESERVED_MICROS], attrs[sc.BUDGET_ACCOUNTS] = reserved
    return SpanRecord(
        trace_id, span_id, parent_id, f"decide {request.act.value}", SpanKind.INTERNAL, start,
        end, SpanStatus.UNSET, attrs, session_id, turn_id,
    )  # fmt: skip
