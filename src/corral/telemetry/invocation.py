"""The ``invoke_agent`` span that closes a turn's trace: usage, outcome, and who ran it.

Built once the turn has ended (and its late usage had a moment to arrive), from the folded
:class:`~corral.telemetry.spans.TurnTrace` and the session's agent and runtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from corral.domain.events import StopReason
from corral.telemetry import semconv as sc
from corral.telemetry.spans import Attributes, SpanKind, SpanRecord, SpanStatus, TurnTrace, clip


@dataclass(frozen=True, slots=True)
class TurnInfo:
    """Who ran a turn: read once per session from the store."""

    agent_id: str
    agent_name: str
    agent_version: int
    model: str | None
    runtime_id: str
    runtime_kind: str
    base_url: str | None
    user_id: str | None


def provider_of(runtime_kind: str) -> str:
    return sc.PROVIDERS.get(runtime_kind, runtime_kind)


def _messages(role: str, text: str, finish: str | None = None) -> str:
    message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": text}]}
    if finish is not None:
        message["finish_reason"] = finish
    return clip(json.dumps([message]))


def turn_span(turn: TurnTrace, info: TurnInfo | None) -> SpanRecord:
    """The ``invoke_agent`` span of a turn that ended (or was given up on at ``last_ts``)."""
    attrs: Attributes = {**turn.common_attributes(), sc.OPERATION_NAME: sc.INVOKE_AGENT}
    name = sc.INVOKE_AGENT
    if info is not None:
        name = f"{sc.INVOKE_AGENT} {info.agent_name}"
        attrs |= {
            sc.PROVIDER_NAME: provider_of(info.runtime_kind),
            sc.AGENT_ID: info.agent_id,
            sc.AGENT_NAME: info.agent_name,
            sc.AGENT_VERSION: str(info.agent_version),
            sc.RUNTIME_ID: info.runtime_id,
            sc.RUNTIME_KIND: info.runtime_kind,
        }
        if info.model:
            attrs[sc.REQUEST_MODEL] = info.model
        if info.user_id:
            attrs[sc.USER_ID] = info.user_id
        attrs |= _server(info.base_url)
    if turn.usage_seen:
        attrs[sc.USAGE_INPUT_TOKENS] = turn.input_tokens
        attrs[sc.USAGE_OUTPUT_TOKENS] = turn.output_tokens
        if turn.cache_read_tokens:
            attrs[sc.USAGE_CACHE_READ_INPUT_TOKENS] = turn.cache_read_tokens
        if turn.cache_write_tokens:
            attrs[sc.USAGE_CACHE_CREATION_INPUT_TOKENS] = turn.cache_write_tokens
    if turn.cost_micros is not None:
        attrs[sc.COST_MICROS] = turn.cost_micros
    if turn.reserved_micros is not None:
        attrs[sc.BUDGET_RESERVED_MICROS] = turn.reserved_micros
    status = SpanStatus.UNSET
    if turn.stop_reason:
        attrs[sc.RESPONSE_FINISH_REASONS] = [turn.stop_reason]
        attrs[sc.STOP_REASON] = turn.stop_reason
        if turn.stop_reason == StopReason.ERROR.value:
            status = SpanStatus.ERROR
            attrs[sc.ERROR_TYPE] = turn.error_code or sc.ERROR_OTHER
    if turn.content and turn.input_text is not None:
        attrs[sc.INPUT_MESSAGES] = _messages("user", turn.input_text)
    if turn.content and turn.output_text:
        attrs[sc.OUTPUT_MESSAGES] = _messages("assistant", "".join(turn.output_text),
                                              turn.stop_reason)  # fmt: skip
    starts = [t for t in (turn.started, turn.admitted) if t is not None]
    end = turn.ended or turn.last_ts or (min(starts) if starts else None)
    assert end is not None, "a turn span needs at least one event"
    start = min(starts) if starts else end
    return SpanRecord(
        turn.trace_id, turn.span_id, None, name, SpanKind.CLIENT, start, max(start, end), status,
        attrs, turn.session_id, turn.turn_id,
    )  # fmt: skip


def _server(base_url: str | None) -> Attributes:
    if not base_url:
        return {}
    try:
        parts = urlsplit(base_url)
        port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
    except ValueError:
        return {}
    return {sc.SERVER_ADDRESS: parts.hostname, sc.SERVER_PORT: port} if parts.hostname else {}
