"""Teams, users and API keys."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from corral.api.schemas.common import Input, Output
from corral.domain.roles import Role

Name = Field(min_length=1, max_length=200)


class TeamCreate(Input):
    name: str = Name


class Team(Output):
    id: str
    name: str
    created_at: datetime


class UserCreate(Input):
    name: str = Name
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    team_id: str | None = Field(default=None, max_length=40)
    role: Role = Role.DEVELOPER


class User(Output):
    id: str
    name: str
    email: str
    team_id: str | None
    role: Role
    created_at: datetime


class Me(Output):
    user_id: str
    key_id: str
    org_id: str
    team_id: str | None
    role: Role


class KeyCreate(Input):
    name: str = Name
    user_id: str | None = Field(default=None, max_length=40)
    role: Role | None = None
    expires_at: datetime | None = None


class Key(Output):
    """A key as listed: never the secret, only the public prefix."""

    id: str
    name: str
    prefix: str
    user_id: str
    team_id: str | None
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    rotated_from: str | None


class KeyIssued(Key):
    """Returned once, when a key is created or rotated."""

    key: str
