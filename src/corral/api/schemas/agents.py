"""Agents and their versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from corral.api.schemas.common import Input, Output


class AgentCreate(Input):
    name: str = Field(min_length=1, max_length=200)
    runtime_id: str = Field(min_length=1, max_length=40)
    team_id: str | None = Field(default=None, max_length=40)
    model: str | None = Field(default=None, max_length=200)
    instructions: str | None = Field(default=None, max_length=100_000)
    tools: list[str] = Field(default_factory=list, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)


class AgentUpdate(Input):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    runtime_id: str | None = Field(default=None, min_length=1, max_length=40)
    model: str | None = Field(default=None, max_length=200)
    instructions: str | None = Field(default=None, max_length=100_000)
    tools: list[str] | None = Field(default=None, max_length=200)
    metadata: dict[str, Any] | None = None


class Agent(Output):
    id: str
    name: str
    team_id: str
    runtime_id: str
    version: int
    paused: bool
    model: str | None
    instructions: str | None
    tools: list[str]
    metadata: dict[str, Any]
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class AgentVersion(Output):
    version: int
    name: str
    runtime_id: str
    model: str | None
    instructions: str | None
    tools: list[str]
    metadata: dict[str, Any]
    created_by: str | None
    created_at: datetime
