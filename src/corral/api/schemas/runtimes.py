"""Runtimes and their write-only credentials."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from corral.api.schemas.common import Input, Output


class RuntimeCreate(Input):
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(min_length=1, max_length=40)
    base_url: str = Field(min_length=1, max_length=2000)
    config: dict[str, Any] = Field(default_factory=dict)


class RuntimeUpdate(Input):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    base_url: str | None = Field(default=None, min_length=1, max_length=2000)
    config: dict[str, Any] | None = None


class CredentialsPut(Input):
    """Values are written to the vault and never returned by any endpoint."""

    credentials: dict[str, Any] = Field(min_length=1)
    team_id: str | None = Field(default=None, max_length=40)
    agent_id: str | None = Field(default=None, max_length=40)


class CredentialStatus(Output):
    scope_type: str
    scope_id: str
    set: bool = True
    created_at: datetime
    updated_at: datetime


class Runtime(Output):
    id: str
    name: str
    kind: str
    base_url: str
    config: dict[str, Any]
    capabilities: dict[str, bool]
    credentials: list[CredentialStatus]
    created_at: datetime
    updated_at: datetime


class RuntimeHealth(Output):
    runtime_id: str
    healthy: bool
    detail: dict[str, Any]
