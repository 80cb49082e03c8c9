"""Who may do what: the one place authorization is decided.

Routes declare the action they perform (``require(Action.X)``); services pass the resource's team
when they have loaded it. A resource of another team is reported as *not found*, never forbidden,
so ids do not leak across teams.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from corral.domain.errors import Forbidden, NotFound
from corral.domain.roles import Role, at_least


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    user_id: str
    org_id: str
    team_id: str | None
    role: Role
    #: The governance epoch read with the key: decisions for this request use a snapshot at
    #: least this fresh, so a revocation committed anywhere is honoured on the next request.
    epoch: int = 0

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


class Action(StrEnum):
    TEAMS_READ = "teams:read"
    TEAMS_WRITE = "teams:write"
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    KEYS_READ = "keys:read"
    KEYS_WRITE = "keys:write"
    RUNTIMES_READ = "runtimes:read"
    RUNTIMES_WRITE = "runtimes:write"
    CREDENTIALS_WRITE = "credentials:write"
    AGENTS_READ = "agents:read"
    AGENTS_WRITE = "agents:write"
    SESSIONS_READ = "sessions:read"
    SESSIONS_WRITE = "sessions:write"
    SESSIONS_KILL = "sessions:kill"
    POLICIES_READ = "policies:read"
    POLICIES_WRITE = "policies:write"
    BUDGETS_READ = "budgets:read"
    BUDGETS_WRITE = "budgets:write"
    APPROVALS_READ = "approvals:read"
    APPROVALS_RESOLVE = "approvals:resolve"
    AUDIT_READ = "audit:read"
    GATEWAY_READ = "gateway:read"
    GATEWAY_WRITE = "gateway:write"
    USAGE_READ = "usage:read"


MINIMUM_ROLE: dict[Action, Role] = {
    Action.TEAMS_READ: Role.VIEWER,
    Action.TEAMS_WRITE: Role.ADMIN,
    Action.USERS_READ: Role.VIEWER,
    Action.USERS_WRITE: Role.TEAM_ADMIN,
    Action.KEYS_READ: Role.VIEWER,
    Action.KEYS_WRITE: Role.VIEWER,  # everyone may manage their own keys; see authorize_key_owner
    Action.RUNTIMES_READ: Role.VIEWER,
    Action.RUNTIMES_WRITE: Role.ADMIN,
    Action.CREDENTIALS_WRITE: Role.TEAM_ADMIN,
    Action.AGENTS_READ: Role.VIEWER,
    Action.AGENTS_WRITE: Role.DEVELOPER,
    Action.SESSIONS_READ: Role.VIEWER,
    Action.SESSIONS_WRITE: Role.DEVELOPER,
    # Stopping every session of an agent or a team is an operator's act, not a developer's.
    Action.SESSIONS_KILL: Role.TEAM_ADMIN,
    Action.POLICIES_READ: Role.VIEWER,
    Action.POLICIES_WRITE: Role.TEAM_ADMIN,
    Action.BUDGETS_READ: Role.VIEWER,
    Action.BUDGETS_WRITE: Role.TEAM_ADMIN,
    Action.APPROVALS_READ: Role.VIEWER,
    # Who may answer a given approval is the rule's business (decide(APPROVAL_RESOLVE)).
    Action.APPROVALS_RESOLVE: Role.VIEWER,
    # Everyone reads the audit records of their own team and their own actions; admins all.
    Action.AUDIT_READ: Role.VIEWER,
    # Upstreams hold provider keys and decide where every model call goes: admins only.
    Action.GATEWAY_READ: Role.VIEWER,
    Action.GATEWAY_WRITE: Role.ADMIN,
    # Everyone reads the usage of their own team; admins all.
    Action.USAGE_READ: Role.VIEWER,
}


def authorize(principal: Principal, action: Action, *, team_id: str | None = None) -> None:
    """Raise unless ``principal`` may perform ``action`` (on a resource of ``team_id``, if given).

    ``team_id=None`` means an org-wide resource or an action not tied to a resource yet.
    """
    if team_id is not None and not can_see_team(principal, team_id):
        raise NotFound("no such resource")
    if not at_least(principal.role, MINIMUM_ROLE[action]):
        raise Forbidden(f"role {principal.role.value!r} may not perform {action.value!r}")


def can_see_team(principal: Principal, team_id: str | None) -> bool:
    return principal.is_admin or (team_id is not None and team_id == principal.team_id)


def visible_team(principal: Principal) -> str | None:
    """The team filter every listing applies: ``None`` (all teams) only for admins."""
    return None if principal.is_admin else (principal.team_id or "")


def authorize_org_scope(principal: Principal, action: Action) -> None:
    """An action over the whole org (an org-wide credential, a new team) needs an admin."""
    authorize(principal, action)
    if not principal.is_admin:
        raise Forbidden(f"{action.value!r} on the whole org needs the admin role")


def authorize_key_owner(
    principal: Principal, owner_user_id: str, owner_team_id: str | None
) -> None:
    """Keys: your own always; your team's users' as team admin; anyone's as admin."""
    if principal.user_id == owner_user_id or principal.is_admin:
        return
    if not can_see_team(principal, owner_team_id):
        raise NotFound("no such resource")
    if principal.role is not Role.TEAM_ADMIN:
        raise Forbidden("only a team admin may manage another user's keys")


def authorize_grant(principal: Principal, role: Role) -> None:
    """Nobody hands out a role above their own."""
    if not at_least(principal.role, role):
        raise Forbidden(f"role {principal.role.value!r} may not grant {role.value!r}")
