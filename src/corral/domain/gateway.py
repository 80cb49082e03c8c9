"""Gateway vocabulary: upstreams, model routes, and the record of one model call.

Pure data, shared by the gateway's hot path, its admin service, the store and the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class UpstreamKind(StrEnum):
    """Which wire family an upstream speaks: OpenAI-compatible or Anthropic."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"


@dataclass(frozen=True, slots=True)
class Upstream:
    id: str
    org_id: str
    name: str
    kind: UpstreamKind
    base_url: str
    timeout_seconds: float
    has_key: bool
    headers: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Target:
    upstream_id: str
    model: str


@dataclass(frozen=True, slots=True)
class ModelRoute:
    id: str
    org_id: str
    name: str
    #: Tried in order: the next one only when the previous answered 429/5xx or timed out.
    targets: tuple[Target, ...]
    aliases: tuple[str, ...] = ()
    #: The output bound injected when a request sets none (it also sizes the reservation).
    max_output_tokens: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class CallOutcome(StrEnum):
    OK = "ok"
    #: The upstream answered with an error status (passed to the caller in its format).
    UPSTREAM_ERROR = "upstream_error"
    #: Refused by Corral before anything was sent (governance, no route, bad request).
    REFUSED = "refused"
    #: A stream that ended without its terminal event (upstream cut it, or it failed).
    TRUNCATED = "truncated"
    #: The caller went away before the answer was complete; the upstream request was cancelled.
    ABORTED = "aborted"
    #: No upstream could be reached (connection errors, timeouts) on any target.
    UNREACHABLE = "unreachable"


@dataclass(slots=True)
class CallRecord:
    """One model call as the gateway saw it; written in batches, never on the response path."""

    id: str
    org_id: str
    api: str
    model: str
    stream: bool
    started_at: datetime
    team_id: str | None = None
    agent_id: str | None = None
    user_id: str | None = None
    key_id: str | None = None
    session_id: str | None = None
    upstream_id: str | None = None
    upstream_model: str | None = None
    status: int = 0
    outcome: CallOutcome = CallOutcome.OK
    code: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_micros: int = 0
    #: True when the cost is the reservation's estimate, not measured usage.
    estimated: bool = False
    attempts: int = 0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    trace_id: str | None = None
    batch_id: str | None = None
    # For the call's span (not stored with the record).
    span_id: str | None = None
    parent_span_id: str | None = None
    upstream_url: str | None = None
    max_tokens: int | None = None
    #: Receipt to the request leaving for the upstream: what Corral adds before it (metrics).
    admission_ms: float | None = None
