"""Trace context of a model call: the caller's W3C ``traceparent`` and the ids of the call's span.

The caller's ``traceparent`` (a runtime that got it from Corral when its turn started) makes the
call a child of that turn's span, so a turn's model calls land in its trace. Without one the
call starts its own trace. The upstream is sent a ``traceparent`` naming the call's span, whose
attributes :mod:`corral.telemetry.model_calls` builds from the call's record.
"""

from __future__ import annotations

import random


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace id, parent span id) of a valid version-00 header, else None."""
    if not value:
        return None
    parts = value.strip().split("-")
    if len(parts) < 4 or parts[0] != "00" or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    trace_id, span_id = parts[1].lower(), parts[2].lower()
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    try:
        int(trace_id, 16), int(span_id, 16)
    except ValueError:
        return None
    return trace_id, span_id


def new_span_id() -> str:
    # Trace ids need uniqueness, not secrecy (the OpenTelemetry SDK uses the same generator).
    return f"{random.getrandbits(64) or 1:016x}"


def new_trace_id() -> str:
    return f"{random.getrandbits(128) or 1:032x}"


def traceparent(trace_id: str, span_id: str) -> str:
    return f"00-{trace_id}-{span_id}-01"
