"""W3C trace context for what Corral calls: runtimes and the LLM gateway join the turn's trace.

:func:`turn_context` makes a turn's ``invoke_agent`` span the current one (its ids derive from
the turn id, so no span object needs to be alive); :func:`inject_traceparent`, an httpx request
hook every runtime client installs, then adds ``traceparent`` (and ``tracestate``) headers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from corral.telemetry.spans import trace_id_of, turn_span_id

_W3C = TraceContextTextMapPropagator()


def span_context_of(turn_id: str) -> SpanContext:
    return SpanContext(
        trace_id=int(trace_id_of(turn_id), 16),
        span_id=int(turn_span_id(turn_id), 16),
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )


@contextmanager
def turn_context(turn_id: str) -> Iterator[None]:
    """Within this block the turn's span is current: outgoing runtime requests carry it."""
    with trace.use_span(NonRecordingSpan(span_context_of(turn_id)), end_on_exit=False):
        yield


async def inject_traceparent(request: httpx.Request) -> None:
    """httpx ``request`` event hook: propagate the current span, when there is one."""
    if not trace.get_current_span().get_span_context().is_valid:
        return
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    request.headers.update(carrier)
