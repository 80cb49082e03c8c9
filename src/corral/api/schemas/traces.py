"""A session's trace: its spans as trees (one per turn, plus decisions made outside a turn)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from corral.api.schemas.common import Output


class Span(Output):
    trace_id: str = Field(description="32 lowercase hex digits (W3C trace id).")
    span_id: str = Field(description="16 lowercase hex digits.")
    parent_id: str | None
    name: str = Field(description="e.g. `invoke_agent helper`, `execute_tool bash`.")
    kind: str = Field(description="`client` or `internal`.")
    start: datetime
    end: datetime
    duration_ms: float
    status: str = Field(description="`unset`, `ok` or `error` (then see `error.type`).")
    turn_id: str | None
    attributes: dict[str, Any] = Field(
        description="OpenTelemetry GenAI attributes (`gen_ai.*`) and Corral's (`corral.*`)."
    )
    children: list[Span]


class SessionTrace(Output):
    session_id: str
    spans: list[Span] = Field(description="Root spans, oldest first, each with its children.")
