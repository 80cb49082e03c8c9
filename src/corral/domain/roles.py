"""Roles a Corral key can carry, ordered from most to least powerful."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    TEAM_ADMIN = "team_admin"
    DEVELOPER = "developer"
    VIEWER = "viewer"


_RANK = {Role.ADMIN: 3, Role.TEAM_ADMIN: 2, Role.DEVELOPER: 1, Role.VIEWER: 0}


def at_least(role: Role, minimum: Role) -> bool:
    return _RANK[role] >= _RANK[minimum]
