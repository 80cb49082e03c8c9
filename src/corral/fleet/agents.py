"""Agent definitions: every update is a new immutable version; sessions record which one ran."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corral.audit.log import AuditLog
from corral.audit.record import AuditEntry, entry
from corral.domain.errors import NotFound
from corral.domain.ids import new_id
from corral.domain.records import Agent, Page
from corral.identity.authz import Action, Principal, authorize, visible_team
from corral.store import agents as repo
from corral.store import governance as governance_repo
from corral.store import runtimes as runtime_repo
from corral.store.db import Database
from corral.store.pagination import clamp_limit
from corral.store.types import utcnow


@dataclass(frozen=True, slots=True)
class AgentFields:
    """The versioned part of an agent."""

    name: str
    runtime_id: str
    model: str | None
    instructions: str | None
    tools: list[str]
    metadata: dict[str, Any]


class AgentService:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    async def _check_runtime(self, who: Principal, runtime_id: str) -> None:
        async with self._db.read() as conn:
            runtime = await runtime_repo.get_runtime(conn, runtime_id)
        if runtime is None or runtime.org_id != who.org_id:
            raise NotFound(f"runtime {runtime_id} not found", code="runtime_not_found")

    async def create(self, who: Principal, team_id: str, fields: AgentFields) -> Agent:
        authorize(who, Action.AGENTS_WRITE, team_id=team_id)
        await self._check_runtime(who, fields.runtime_id)
        now = utcnow()
        agent_id = new_id("agent")
        row = {
            "id": agent_id,
            "org_id": who.org_id,
            "team_id": team_id,
            "runtime_id": fields.runtime_id,
            "name": fields.name,
            "version": 1,
            "paused": False,
            "created_by": who.user_id,
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
        }
        async with self._db.write() as conn:
            await repo.insert_agent(conn, row, self._version_row(agent_id, 1, fields, who, now))
            await self._audit.append(conn, _entry("agent.create", who, agent_id, team_id, {
                "name": fields.name, "version": 1, "runtime_id": fields.runtime_id,
                "model": fields.model}))  # fmt: skip
        return await self.get(who, agent_id)

    @staticmethod
    def _version_row(
        agent_id: str, version: int, fields: AgentFields, who: Principal, now: Any
    ) -> dict[str, Any]:
        return {
            "agent_id": agent_id,
            "version": version,
            "name": fields.name,
            "runtime_id": fields.runtime_id,
            "model": fields.model,
            "instructions": fields.instructions,
            "tools": fields.tools,
            "metadata": fields.metadata,
            "created_by": who.user_id,
            "created_at": now,
        }

    async def get(self, who: Principal, agent_id: str, version: int | None = None) -> Agent:
        async with self._db.read() as conn:
            agent = await repo.get_agent(conn, agent_id, version=version)
        if agent is None or agent.org_id != who.org_id:
            raise NotFound(f"agent {agent_id} not found")
        authorize(who, Action.AGENTS_READ, team_id=agent.team_id)
        return agent

    async def list_agents(
        self,
        who: Principal,
        *,
        team_id: str | None,
        runtime_id: str | None,
        name: str | None,
        cursor: str | None,
        limit: int | None,
    ) -> Page[Agent]:
        authorize(who, Action.AGENTS_READ)
        scope = visible_team(who)
        if team_id is not None and scope is not None and team_id != scope:
            return Page([], None)
        async with self._db.read() as conn:
            return await repo.list_agents(
                conn,
                who.org_id,
                team_id=team_id or scope,
                runtime_id=runtime_id,
                name=name,
                cursor=cursor,
                limit=clamp_limit(limit),
            )

    async def versions(self, who: Principal, agent_id: str) -> list[dict[str, Any]]:
        await self.get(who, agent_id)
        async with self._db.read() as conn:
            return await repo.list_versions(conn, agent_id)

    async def update(self, who: Principal, agent_id: str, changes: dict[str, Any]) -> Agent:
        """Apply ``changes`` (a subset of AgentFields' names) as a new version."""
        current = await self.get(who, agent_id)
        authorize(who, Action.AGENTS_WRITE, team_id=current.team_id)
        if "runtime_id" in changes:
            await self._check_runtime(who, changes["runtime_id"])
        fields = AgentFields(
            name=changes.get("name", current.name),
            runtime_id=changes.get("runtime_id", current.runtime_id),
            model=changes.get("model", current.model),
            instructions=changes.get("instructions", current.instructions),
            tools=changes.get("tools", current.tools),
            metadata=changes.get("metadata", current.metadata),
        )
        now = utcnow()
        async with self._db.write() as conn:
            locked = await repo.get_agent(conn, agent_id, for_update=True)
            if locked is None:
                raise NotFound(f"agent {agent_id} not found")
            version = locked.version + 1
            await repo.add_version(
                conn,
                agent_id,
                self._version_row(agent_id, version, fields, who, now),
                name=fields.name,
                at=now,
            )
            await repo.set_agent_fields(conn, agent_id, runtime_id=fields.runtime_id)
            await self._audit.append(conn, _entry("agent.update", who, agent_id, current.team_id, {
                "version": version, "changed": sorted(changes)}))  # fmt: skip
        return await self.get(who, agent_id)

    async def set_paused(self, who: Principal, agent_id: str, paused: bool) -> Agent:
        current = await self.get(who, agent_id)
        authorize(who, Action.AGENTS_WRITE, team_id=current.team_id)
        async with self._db.write() as conn:
            await repo.set_agent_fields(conn, agent_id, paused=paused, updated_at=utcnow())
            await governance_repo.bump_epoch(conn)
            action = "agent.pause" if paused else "agent.resume"
            await self._audit.append(conn, _entry(action, who, agent_id, current.team_id, {}))
        return await self.get(who, agent_id)

    async def delete(self, who: Principal, agent_id: str) -> None:
        current = await self.get(who, agent_id)
        authorize(who, Action.AGENTS_WRITE, team_id=current.team_id)
        now = utcnow()
        async with self._db.write() as conn:
            await repo.set_agent_fields(conn, agent_id, deleted_at=now, updated_at=now)
            await governance_repo.bump_epoch(conn)
            await self._audit.append(conn, _entry("agent.delete", who, agent_id, current.team_id,
                                                  {"name": current.name}))  # fmt: skip


def _entry(
    action: str, who: Principal, agent_id: str, team_id: str, details: dict[str, Any]
) -> AuditEntry:
    return entry(
        action, ("agent", agent_id), actor=who, org_id=who.org_id, team_id=team_id,
        details=details,
    )  # fmt: skip
