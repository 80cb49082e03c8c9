"""Sessions, their events and approvals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from corral.api.schemas.common import Input, Output
from corral.domain.events import ApprovalDecision
from corral.domain.states import SessionState

Text = Field(min_length=1, max_length=200_000)


class SessionCreate(Input):
    agent_id: str = Field(min_length=1, max_length=40)
    input: str | None = Field(default=None, min_length=1, max_length=200_000)
    title: str | None = Field(default=None, max_length=500)


class MessageCreate(Input):
    text: str = Text


class ApprovalResolve(Input):
    decision: ApprovalDecision
    message: str | None = Field(default=None, max_length=10_000)


class ToolResultIn(Input):
    call_id: str = Field(min_length=1, max_length=200)
    output: str = Field(max_length=200_000)
    is_error: bool = False


class InputAnswerCreate(Input):
    """Exactly one of ``text`` (a question or free-text request) or ``tool_results`` (the
    results of the client-side tools named by the request's ``call_ids``)."""

    text: str | None = Field(default=None, max_length=200_000)
    tool_results: list[ToolResultIn] | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _one_kind(self) -> InputAnswerCreate:
        if (self.text is None) == (self.tool_results is None):
            raise ValueError("give exactly one of 'text' or 'tool_results'")
        return self


class Session(Output):
    id: str
    agent_id: str
    agent_version: int
    runtime_id: str
    team_id: str
    user_id: str | None
    native_session_id: str | None
    state: SessionState
    stop_reason: str | None
    title: str | None
    turns: int
    current_turn_id: str | None
    last_seq: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    error: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime


class TurnAccepted(Output):
    session_id: str
    turn_id: str
    input_id: str
    state: SessionState


class Event(Output):
    session_id: str
    seq: int
    type: str
    ts: datetime
    data: dict[str, Any]
    turn_id: str | None
    native_type: str | None


class Approval(Output):
    id: str
    session_id: str
    turn_id: str | None
    call_id: str | None
    name: str | None
    input: Any
    choices: list[str]
    status: str
    decision: str | None
    message: str | None
    resolved_by: str | None
    created_at: datetime
    resolved_at: datetime | None
    #: "human", "policy", "expiry", or "ask" while a rule waits for its named approvers
    decided_by: str | None = None
    policy_id: str | None = None
    policy_version: int | None = None
    approvers: dict[str, Any] | None = None
    expires_at: datetime | None = None


class SessionKill(Input):
    reason: str | None = Field(default=None, max_length=1000)


class FleetKill(Input):
    """Which live sessions to kill: every given filter must match (at least one)."""

    agent_id: str | None = Field(default=None, max_length=40)
    team_id: str | None = Field(default=None, max_length=40)
    runtime_id: str | None = Field(default=None, max_length=40)
    key_id: str | None = Field(default=None, max_length=40)
    user_id: str | None = Field(default=None, max_length=40)
    reason: str | None = Field(default=None, max_length=1000)


class KillReport(Output):
    killed: list[str]
    failed: dict[str, str]
