"""Stored objects as plain frozen dataclasses; field names match the table columns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from corral.domain.roles import Role
from corral.domain.states import SessionState


@dataclass(frozen=True, slots=True)
class Org:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    org_id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class User:
    id: str
    org_id: str
    team_id: str | None
    name: str
    email: str
    role: Role
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    org_id: str
    user_id: str
    team_id: str | None
    name: str
    role: Role
    prefix: str
    hash: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    rotated_from: str | None
    session_id: str | None = None
    agent_id: str | None = None


@dataclass(frozen=True, slots=True)
class Runtime:
    id: str
    org_id: str
    name: str
    kind: str
    base_url: str
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """What may be shown about stored credentials: never the values."""

    scope_type: str
    scope_id: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    org_id: str
    team_id: str
    runtime_id: str
    name: str
    version: int
    paused: bool
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    model: str | None
    instructions: str | None
    tools: list[str]
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    org_id: str
    team_id: str
    agent_id: str
    agent_version: int
    runtime_id: str
    user_id: str | None
    key_id: str | None
    native_session_id: str | None
    state: SessionState
    stop_reason: str | None
    title: str | None
    last_seq: int
    turns: int
    current_turn_id: str | None
    input_tokens: int
    output_tokens: int
    cost_micros: int
    error: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime


@dataclass(frozen=True, slots=True)
class Approval:
    id: str
    session_id: str
    turn_id: str | None
    native_id: str
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
    #: Governance: who answered ("human", "policy", "expiry"), under which policy, until when.
    decided_by: str | None = None
    policy_id: str | None = None
    policy_version: int | None = None
    approvers: dict[str, Any] | None = None
    expires_at: datetime | None = None


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Policy:
    """A governance rule set on one scope; ``version`` grows with every edit."""

    id: str
    org_id: str
    scope_kind: str
    scope_id: str
    kind: str
    body: dict[str, Any]
    version: int
    enabled: bool
    description: str | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Budget:
    id: str
    org_id: str
    scope_kind: str
    scope_id: str
    limit_micros: int
    period: str
    timezone: str
    soft_percent: int | None
    version: int
    created_by: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ModelPriceRow:
    """An admin's price for a model, overriding the shipped table (micro-USD per million tokens)."""

    org_id: str
    model: str
    input_micros: int
    output_micros: int
    cache_read_micros: int | None
    cache_write_micros: int | None
    updated_at: datetime
