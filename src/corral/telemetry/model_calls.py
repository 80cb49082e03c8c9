"""A model call as a span: ``chat {model}``, OpenTelemetry GenAI conventions. Pure.

The gateway does not write a span row per call: the call's row in ``gateway_calls`` carries
everything the span says (its ids, tokens, status, timing), so the span is built from the
record when it is exported over OTLP and when a session's trace is read from the store. One
durable write per call instead of two.
"""

from __future__ import annotations

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


_NO_TRACE = "0" * 32  # never stored: the gateway gives every call a trace and span id
_NO_SPAN = "0" * 16


def call_span(record: CallRecord, upstream_url: str | None) -> SpanRecord:
    """The call's span, from its record (``upstream_url``: the base URL of the upstream that
    answered, for ``server.address``)."""
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
        REQUEST_MAX_TOKENS: record.max_tokens,
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
        trace_id=record.trace_id or _NO_TRACE, span_id=record.span_id or _NO_SPAN,
        parent_id=record.parent_span_id,
        name=f"{sc.CHAT} {record.model}".strip(), kind=SpanKind.CLIENT,
        start=record.started_at,
        end=record.started_at + timedelta(milliseconds=record.latency_ms),
        status=SpanStatus.ERROR if failed else SpanStatus.UNSET, attributes=attrs,
        session_id=record.session_id,
    )  # fmt: skip
