"""Editing governance: policies, budgets and model prices, each change bumping the epoch.

Who may edit what: the org scope and prices need an admin; a team, or an agent, user, key or
session of a team, needs that team's admin (or an admin). Readers see their own team's rows.
Every write validates by compiling (a malformed rule never reaches the snapshot) and bumps the
epoch in the same transaction, so every replica's next decision sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from corral.audit.canonical import digest
from corral.audit.log import AuditLog
from corral.audit.record import AuditEntry, entry
from corral.domain.errors import Conflict, InvalidRequest, NotFound
from corral.domain.governance import BUDGET_PERIODS, POLICY_SCOPES, Period, PolicyKind, ScopeKind
from corral.domain.ids import new_id
from corral.domain.money import usd_to_micros
from corral.domain.records import Budget, Page, Policy
from corral.governance.governor import Governor
from corral.governance.periods import zone
from corral.governance.snapshot import compile_policy
from corral.identity.authz import Action, Principal, authorize, authorize_org_scope
from corral.store import agents as agent_repo
from corral.store import governance as repo
from corral.store import identity as identity_repo
from corral.store import sessions as session_repo
from corral.store.db import Database
from corral.store.pagination import clamp_limit
from corral.store.types import utcnow


@dataclass(frozen=True, slots=True)
class BudgetView:
    budget: Budget
    spent_micros: int
    reserved_micros: int
    window_start: datetime
    window_end: datetime | None

    @property
    def remaining_micros(self) -> int:
        return max(0, self.budget.limit_micros - self.spent_micros - self.reserved_micros)

    @property
    def soft_exceeded(self) -> bool:
        pct = self.budget.soft_percent
        return pct is not None and self.spent_micros >= self.budget.limit_micros * pct // 100


def parse_scope(text: str) -> tuple[ScopeKind, str]:
    kind, _, id_ = text.partition(":")
    if not id_ or kind not in {k.value for k in ScopeKind}:
        raise InvalidRequest(
            f"scope {text!r}: use KIND:ID with KIND one of {[k.value for k in ScopeKind]}",
            code="invalid_scope",
        )
    return ScopeKind(kind), id_


async def _team_of(conn: AsyncConnection, org_id: str, kind: ScopeKind, id_: str) -> str | None:
    """The team a scope belongs to (``None`` for the org); NotFound outside the caller's org."""
    owner: tuple[str, str | None] | None = None
    if kind is ScopeKind.ORG:
        owner = (id_, None)
    elif kind is ScopeKind.TEAM:
        team = await identity_repo.get_team(conn, id_)
        owner = (team.org_id, team.id) if team else None
    elif kind is ScopeKind.AGENT:
        agent = await agent_repo.get_agent(conn, id_)
        owner = (agent.org_id, agent.team_id) if agent else None
    elif kind is ScopeKind.USER:
        user = await identity_repo.get_user(conn, id_)
        owner = (user.org_id, user.team_id) if user else None
    elif kind is ScopeKind.KEY:
        key = await identity_repo.get_key(conn, id_)
        owner = (key.org_id, key.team_id) if key else None
    else:
        session = await session_repo.get_session(conn, id_)
        owner = (session.org_id, session.team_id) if session else None
    if owner is None or owner[0] != org_id:
        raise NotFound(f"{kind.value} {id_} not found", code="scope_not_found")
    return owner[1]


class GovernanceService:
    def __init__(self, db: Database, governor: Governor, audit: AuditLog) -> None:
        self._db = db
        self._governor = governor
        self._audit = audit

    async def _authorize_scope(
        self, conn: AsyncConnection, who: Principal, kind: ScopeKind, id_: str, action: Action
    ) -> str | None:
        """Raise unless ``who`` may do ``action`` on the scope; the team it belongs to."""
        team = await _team_of(conn, who.org_id, kind, id_)
        if team is None:
            if action in (Action.POLICIES_WRITE, Action.BUDGETS_WRITE):
                authorize_org_scope(who, action)
            else:
                authorize(who, action)
        else:
            authorize(who, action, team_id=team)
        return team

    async def _changed(self, conn: AsyncConnection) -> None:
        await repo.bump_epoch(conn)
        self._governor.invalidate()

    # -- policies ---------------------------------------------------------------------------

    async def create_policy(
        self,
        who: Principal,
        *,
        scope: str,
        kind: str,
        body: dict[str, Any],
        enabled: bool,
        description: str | None,
    ) -> Policy:
        scope_kind, scope_id = parse_scope(scope)
        if scope_kind not in POLICY_SCOPES:
            raise InvalidRequest(
                f"policies attach to {sorted(k.value for k in POLICY_SCOPES)}",
                code="invalid_scope",
            )
        try:
            PolicyKind(kind)
        except ValueError:
            raise InvalidRequest(
                f"kind must be one of {[k.value for k in PolicyKind]}", code="invalid_policy"
            ) from None
        now = utcnow()
        policy = Policy(
            id=new_id("policy"), org_id=who.org_id, scope_kind=scope_kind.value,
            scope_id=scope_id, kind=kind, body=body, version=1, enabled=enabled,
            description=description, created_by=who.user_id, created_at=now, updated_at=now,
        )  # fmt: skip
        compile_policy(policy)
        async with self._db.write() as conn:
            team = await self._authorize_scope(
                conn, who, scope_kind, scope_id, Action.POLICIES_WRITE
            )
            await repo.insert_policy(conn, policy)
            await self._changed(conn)
            await self._audit.append(conn, _policy_entry("policy.create", who, policy, team))
        return policy

    async def _policy(
        self, conn: AsyncConnection, who: Principal, policy_id: str, *, for_update: bool = True
    ) -> Policy:
        policy = await repo.get_policy(conn, policy_id, for_update=for_update)
        if policy is None or policy.org_id != who.org_id:
            raise NotFound(f"policy {policy_id} not found")
        return policy

    async def get_policy(self, who: Principal, policy_id: str) -> Policy:
        async with self._db.read() as conn:
            policy = await self._policy(conn, who, policy_id, for_update=False)
            await self._authorize_scope(
                conn, who, ScopeKind(policy.scope_kind), policy.scope_id, Action.POLICIES_READ
            )
        return policy

    async def update_policy(
        self,
        who: Principal,
        policy_id: str,
        *,
        body: dict[str, Any] | None,
        enabled: bool | None,
        description: str | None,
        expected_version: int | None,
    ) -> Policy:
        async with self._db.write() as conn:
            current = await self._policy(conn, who, policy_id)
            team = await self._authorize_scope(
                conn, who, ScopeKind(current.scope_kind), current.scope_id, Action.POLICIES_WRITE
            )
            if expected_version is not None and expected_version != current.version:
                raise Conflict(
                    f"policy is at version {current.version}, not {expected_version}",
                    code="version_mismatch",
                )
            updated = replace(
                current,
                body=current.body if body is None else body,
                enabled=current.enabled if enabled is None else enabled,
                description=current.description if description is None else description,
                version=current.version + 1,
                updated_at=utcnow(),
            )
            compile_policy(updated)
            await repo.update_policy(conn, updated, who.user_id)
            await self._changed(conn)
            await self._audit.append(conn, _policy_entry("policy.update", who, updated, team))
        return updated

    async def delete_policy(self, who: Principal, policy_id: str) -> None:
        async with self._db.write() as conn:
            current = await self._policy(conn, who, policy_id)
            team = await self._authorize_scope(
                conn, who, ScopeKind(current.scope_kind), current.scope_id, Action.POLICIES_WRITE
            )
            await repo.delete_policy(conn, current, who.user_id, utcnow())
            await self._changed(conn)
            gone = replace(current, version=current.version + 1)  # the version deletion wrote
            await self._audit.append(conn, _policy_entry("policy.delete", who, gone, team))

    async def policy_history(self, who: Principal, policy_id: str) -> list[dict[str, Any]]:
        async with self._db.read() as conn:
            history = await repo.policy_history(conn, who.org_id, policy_id)
            current = await repo.get_policy(conn, policy_id)
            if not history or (current is not None and current.org_id != who.org_id):
                raise NotFound(f"policy {policy_id} not found")
            if current is not None:
                await self._authorize_scope(
                    conn, who, ScopeKind(current.scope_kind), current.scope_id,
                    Action.POLICIES_READ,
                )  # fmt: skip
            else:
                authorize_org_scope(who, Action.POLICIES_READ)
        return history

    async def list_policies(
        self,
        who: Principal,
        *,
        scope: str | None,
        kind: str | None,
        cursor: str | None,
        limit: int | None,
    ) -> Page[Policy]:
        authorize(who, Action.POLICIES_READ)
        scopes = await self._visible_scopes(who, scope)
        async with self._db.read() as conn:
            return await repo.list_policies(
                conn, who.org_id, scopes=scopes, kind=kind, cursor=cursor,
                limit=clamp_limit(limit),
            )  # fmt: skip

    async def _visible_scopes(
        self, who: Principal, scope: str | None
    ) -> list[tuple[str, str]] | None:
        """A filter for listings: one scope if asked (and visible), else what the caller sees."""
        if scope is not None:
            kind, id_ = parse_scope(scope)
            async with self._db.read() as conn:
                await self._authorize_scope(conn, who, kind, id_, Action.POLICIES_READ)
            return [(kind.value, id_)]
        if who.is_admin:
            return None
        # Non-admins see their org's, their team's and their own key's rows.
        seen = [(ScopeKind.ORG.value, who.org_id), (ScopeKind.KEY.value, who.key_id),
                (ScopeKind.USER.value, who.user_id)]  # fmt: skip
        if who.team_id:
            seen.append((ScopeKind.TEAM.value, who.team_id))
            async with self._db.read() as conn:
                page = await agent_repo.list_agents(
                    conn,
                    who.org_id,
                    team_id=who.team_id,
                    runtime_id=None,
                    name=None,
                    cursor=None,
                    limit=200,
                )
            seen += [(ScopeKind.AGENT.value, a.id) for a in page.items]
        return seen

    # -- budgets ----------------------------------------------------------------------------

    async def set_budget(
        self,
        who: Principal,
        *,
        scope: str,
        limit_usd: float,
        period: str,
        timezone: str,
        soft_percent: int | None,
    ) -> BudgetView:
        """Create or replace the budget of ``scope`` for ``period`` (one per scope and period)."""
        kind, id_ = parse_scope(scope)
        try:
            per = Period(period)
        except ValueError:
            per = None
        if per not in BUDGET_PERIODS:
            raise InvalidRequest(
                f"period must be one of {[p.value for p in BUDGET_PERIODS]}", code="invalid_period"
            )
        if limit_usd < 0:
            raise InvalidRequest("limit must be >= 0", code="invalid_budget")
        if soft_percent is not None and not 1 <= soft_percent <= 100:
            raise InvalidRequest("soft threshold is a percentage, 1 to 100", code="invalid_budget")
        zone(timezone)
        now = utcnow()
        async with self._db.write() as conn:
            team = await self._authorize_scope(conn, who, kind, id_, Action.BUDGETS_WRITE)
            found = await repo.find_budget(conn, who.org_id, kind.value, id_, period)
            budget = Budget(
                id=found.id if found else new_id("budget"), org_id=who.org_id,
                scope_kind=kind.value, scope_id=id_, limit_micros=usd_to_micros(limit_usd),
                period=period, timezone=timezone, soft_percent=soft_percent,
                version=found.version + 1 if found else 1, created_by=who.user_id,
                created_at=found.created_at if found else now, updated_at=now,
            )  # fmt: skip
            await repo.upsert_budget(conn, budget, new=found is None)
            await self._changed(conn)
            await self._audit.append(conn, entry(
                "budget.set", ("budget", budget.id), actor=who, org_id=who.org_id, team_id=team,
                details={"scope": scope, "limit_micros": budget.limit_micros, "period": period,
                         "timezone": timezone, "soft_percent": soft_percent,
                         "version": budget.version},
            ))  # fmt: skip
        return (await self._views([budget]))[0]

    async def _budget(
        self, conn: AsyncConnection, who: Principal, budget_id: str, action: Action
    ) -> tuple[Budget, str | None]:
        """The budget, if ``who`` may do ``action`` on it, and the team it belongs to."""
        budget = await repo.get_budget(conn, budget_id)
        if budget is None or budget.org_id != who.org_id:
            raise NotFound(f"budget {budget_id} not found")
        team = await self._authorize_scope(
            conn, who, ScopeKind(budget.scope_kind), budget.scope_id, action
        )
        return budget, team

    async def get_budget(self, who: Principal, budget_id: str) -> BudgetView:
        async with self._db.read() as conn:
            budget, _ = await self._budget(conn, who, budget_id, Action.BUDGETS_READ)
        return (await self._views([budget]))[0]

    async def delete_budget(self, who: Principal, budget_id: str) -> None:
        async with self._db.write() as conn:
            budget, team = await self._budget(conn, who, budget_id, Action.BUDGETS_WRITE)
            await repo.delete_budget(conn, budget_id)
            await self._changed(conn)
            await self._audit.append(conn, entry(
                "budget.delete", ("budget", budget_id), actor=who, org_id=who.org_id,
                team_id=team, details={"scope": f"{budget.scope_kind}:{budget.scope_id}",
                                       "period": budget.period},
            ))  # fmt: skip

    async def list_budgets(
        self, who: Principal, *, scope: str | None, cursor: str | None, limit: int | None
    ) -> Page[BudgetView]:
        authorize(who, Action.BUDGETS_READ)
        scopes = await self._visible_scopes(who, scope)
        async with self._db.read() as conn:
            page = await repo.list_budgets(
                conn, who.org_id, scopes=scopes, cursor=cursor, limit=clamp_limit(limit)
            )
        return Page(await self._views(page.items), page.next_cursor)

    async def _views(self, budgets: list[Budget]) -> list[BudgetView]:
        usage = await self._governor.usage(budgets)
        return [BudgetView(b, *usage[b.id]) for b in budgets]


def _policy_entry(action: str, who: Principal, policy: Policy, team: str | None) -> AuditEntry:
    return entry(
        action, ("policy", policy.id), actor=who, org_id=who.org_id, team_id=team,
        policy=(policy.id, policy.version),
        details={"scope": f"{policy.scope_kind}:{policy.scope_id}", "kind": policy.kind,
                 "enabled": policy.enabled, "body_sha256": digest(policy.body)},
    )  # fmt: skip
