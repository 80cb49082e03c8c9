"""A session's trace, from Corral's own store of spans and model-call rows (no collector needed)."""

from __future__ import annotations

from fastapi import APIRouter

from corral.api.deps import Caller, Svc
from corral.api.schemas.traces import SessionTrace, Span
from corral.telemetry.tree import SpanNode

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


def _span_out(node: SpanNode) -> Span:
    s = node.span
    return Span(
        trace_id=s.trace_id, span_id=s.span_id, parent_id=s.parent_id, name=s.name,
        kind=s.kind.value, start=s.start, end=s.end,
        duration_ms=round((s.end - s.start).total_seconds() * 1000, 3), status=s.status.value,
        turn_id=s.turn_id, attributes=s.attributes, children=[_span_out(c) for c in node.children],
    )  # fmt: skip


@router.get("/{session_id}/trace", response_model=SessionTrace)
async def session_trace(session_id: str, who: Caller, svc: Svc) -> SessionTrace:
    """Every turn of the session as a span tree: `invoke_agent` with its tool calls, approval
    waits and governance decisions. Spans of a turn appear shortly after it ends."""
    session = await svc.sessions.get(who, session_id)
    roots = await svc.telemetry.session_trace(session.id)
    return SessionTrace(session_id=session.id, spans=[_span_out(n) for n in roots])
