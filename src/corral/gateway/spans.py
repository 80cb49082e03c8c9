"""A model call as a span: ``chat {model}``, OpenTelemetry GenAI conventions. Pure.

The caller's W3C ``traceparent`` (a runtime that got it from Corral when its turn started)
makes the call a child of that turn's span, so a turn's model calls land in its trace. Without
one the call starts its own trace. The upstream is sent a ``traceparent`` naming this span.
"""

from __future__ import annotations

import random
from datetime import timedelta
from urllib.parse import urlsplit

from corral.domain.gateway import CallOutcome, CallRecord
from corral.telemetry import semconv as sc
from corral.telemetry.spans import Attributes, SpanKind, SpanRecord, SpanStatus

_PROVIDERS = {"anthropic.messages": "anthropic"}
GATEWAY_OUTCOME = "corral.gateway.outcome"
GATEWAY_ATTEMPTS = "corral.gateway.attempts"
GATEWAY_ESTIMATED = "corral.gateway.cost_estimated"
RESPONSE_MODEL = "gen_ai.response.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
HTTP_STATUS = "http.response.status_code"


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


def call_span(
    record: CallRecord,
    *,
    span_id: str,
    parent_id: str | None,
    upstream_url: str | None,
    max_tokens: int | None,
) -> SpanRecord:
    attrs: Attributes = {
        sc.OPERATION_NAME: sc.CHAT,
        sc.PROVIDER_NAME: _PROVIDERS.get(record.api, "openai"),
        sc.REQUEST_MODEL: record.model,
        GATEWAY_OUTCOME: str(record.outcome),
        GATEWAY_ATTEMPTS: record.attempts,
        sc.COST_MICROS: record.cost_micros,
    }
    optional: Attributes = {
        RESPONSE_MODEL: record.upstream_model,
        REQUEST_MAX_TOKENS: max_tokens,
        HTTP_STATUS: record.status or None,
        sc.SESSION_ID: record.session_id,
        sc.AGENT_ID: record.agent_id,
        sc.USER_ID: record.user_id,
    }
    attrs.update({k: v for k, v in optional.items() if v is not None})
    if record.outcome in (CallOutcome.OK, CallOutcome.TRUNCATED, CallOutcome.ABORTED):
        attrs[sc.USAGE_INPUT_TOKENS] = record.input_tokens + record.cache_read_tokens + (
            record.cache_write_tokens)  # fmt: skip
        attrs[sc.USAGE_OUTPUT_TOKENS] = record.output_tokens
        if record.cache_read_tokens:
            attrs[sc.USAGE_CACHE_READ_INPUT_TOKENS] = record.cache_read_tokens
        if record.cache_write_tokens:
            attrs[sc.USAGE_CACHE_CREATION_INPUT_TOKENS] = record.cache_write_tokens
        if record.estimated:
            attrs[GATEWAY_ESTIMATED] = True
    if upstream_url:
        parts = urlsplit(upstream_url)
        if parts.hostname:
            attrs[sc.SERVER_ADDRESS] = parts.hostname
            attrs[sc.SERVER_PORT] = parts.port or (443 if parts.scheme == "https" else 80)
    failed = record.outcome is not CallOutcome.OK
    if failed:
        attrs[sc.ERROR_TYPE] = record.code or str(record.outcome)
    return SpanRecord(
        trace_id=record.trace_id or new_trace_id(), span_id=span_id, parent_id=parent_id,
        name=f"{sc.CHAT} {record.model}".strip(), kind=SpanKind.CLIENT,
        start=record.started_at,
        end=record.started_at + timedelta(milliseconds=record.latency_ms),
        status=SpanStatus.ERROR if failed else SpanStatus.UNSET, attributes=attrs,
        session_id=record.session_id,
    )  # fmt: skip
