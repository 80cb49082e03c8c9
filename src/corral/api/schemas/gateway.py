"""The gateway's administration: upstreams, model routes, usage. (The model APIs themselves
speak the providers' own formats and are not described here.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from corral.api.schemas.common import Input, Output
from corral.domain.gateway import UpstreamKind

Name = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")


class UpstreamCreate(Input):
    name: str = Name
    kind: UpstreamKind = Field(description="'openai' (any OpenAI-compatible API) or 'anthropic'.")
    base_url: str = Field(
        min_length=1, max_length=2000,
        description="As you would give the official SDK: 'https://api.openai.com/v1', "
        "'https://api.anthropic.com'.",
    )  # fmt: skip
    api_key: str | None = Field(default=None, min_length=1, max_length=4000,
                                description="Sealed in the vault; never returned.")  # fmt: skip
    timeout_seconds: float = Field(default=600.0, gt=0, le=3600,
                                   description="Longest upstream silence.")  # fmt: skip
    headers: dict[str, str] = Field(default_factory=dict, max_length=20,
                                    description="Extra headers sent with every call.")  # fmt: skip


class UpstreamUpdate(Input):
    base_url: str | None = Field(default=None, min_length=1, max_length=2000)
    api_key: str | None = Field(default=None, max_length=4000,
                                description="A new key; an empty string removes it.")  # fmt: skip
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600)
    headers: dict[str, str] | None = Field(default=None, max_length=20)


class UpstreamOut(Output):
    id: str
    name: str
    kind: UpstreamKind
    base_url: str
    timeout_seconds: float
    has_key: bool
    headers: dict[str, str]
    created_at: datetime | None
    updated_at: datetime | None


class TargetIn(Input):
    upstream: str = Field(min_length=1, max_length=200, description="Upstream name or id.")
    model: str = Field(min_length=1, max_length=200, description="The model name upstream.")


class ModelPut(Input):
    targets: list[TargetIn] = Field(
        min_length=1, max_length=10,
        description="Tried in order: the next on 408/429/5xx, a timeout or no connection.",
    )  # fmt: skip
    aliases: list[str] = Field(default_factory=list, max_length=20)
    max_output_tokens: int | None = Field(
        default=None, gt=0, le=1_000_000,
        description="Injected when a request sets no output bound (sizes the reservation).",
    )  # fmt: skip


class ModelCreate(ModelPut):
    name: str = Name


class TargetOut(Output):
    upstream_id: str
    model: str


class ModelOut(Output):
    id: str
    name: str
    targets: list[TargetOut]
    aliases: list[str]
    max_output_tokens: int | None
    created_at: datetime | None
    updated_at: datetime | None


class UsageRow(Output):
    """One group's totals (the grouping columns present are those asked for)."""

    model: str | None = None
    key_id: str | None = None
    session_id: str | None = None
    agent_id: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    upstream_id: str | None = None
    outcome: str | None = None
    api: str | None = None
    day: str | None = None
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    avg_latency_ms: float | None
    avg_ttft_ms: float | None


class UsageOut(Output):
    group_by: list[str]
    since: datetime | None
    until: datetime | None
    data: list[UsageRow]


class CallOut(Output):
    id: str
    started_at: datetime
    api: str
    model: str
    upstream_id: str | None
    upstream_model: str | None
    stream: bool
    status: int
    outcome: str
    code: str | None
    key_id: str | None
    session_id: str | None
    agent_id: str | None
    team_id: str | None
    user_id: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    estimated: bool
    attempts: int
    latency_ms: float
    ttft_ms: float | None
    trace_id: str | None


def usage_row(row: dict[str, Any]) -> UsageRow:
    values = {k: v for k, v in row.items() if k != "cost_micros"}
    for k in ("calls", "errors", "input_tokens", "output_tokens", "cache_read_tokens",
              "cache_write_tokens"):  # fmt: skip
        values[k] = int(values.get(k) or 0)
    values["cost_usd"] = int(row.get("cost_micros") or 0) / 1_000_000
    return UsageRow.model_validate(values)


def call_out(row: dict[str, Any]) -> CallOut:
    return CallOut.model_validate({**row, "cost_usd": int(row["cost_micros"]) / 1_000_000})


class SessionKeyOut(Output):
    """What a runtime needs to send a session's model calls through the gateway."""

    key: str = Field(description="Shown once. Give it to the runtime as its provider API key.")
    key_id: str
    session_id: str
    agent_id: str
    expires_at: datetime
    openai_base_url: str = Field(description="For OpenAI SDKs / OPENAI_BASE_URL.")
    anthropic_base_url: str = Field(description="For Anthropic SDKs / ANTHROPIC_BASE_URL.")
