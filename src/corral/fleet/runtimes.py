"""Registering runtimes and storing their credentials (write-only, through the vault)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from corral.audit.log import AuditLog
from corral.audit.record import entry
from corral.domain.errors import InvalidRequest, NotFound
from corral.domain.ids import new_id
from corral.domain.records import CredentialInfo, Page, Runtime
from corral.identity.authz import Action, Principal, authorize, authorize_org_scope
from corral.runtimes import registry
from corral.runtimes.base import Capabilities
from corral.sessions.connections import AdapterPool
from corral.store import agents as agent_repo
from corral.store import runtimes as repo
from corral.store.db import Database
from corral.store.pagination import clamp_limit
from corral.store.types import utcnow
from corral.vault.service import Vault


@dataclass(frozen=True, slots=True)
class RuntimeView:
    runtime: Runtime
    capabilities: Capabilities
    credentials: list[CredentialInfo]


def _check_url(base_url: str) -> str:
    parsed = urlparse(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidRequest("base_url must be an http(s) URL with a host", code="invalid_base_url")
    if parsed.username or parsed.password:
        raise InvalidRequest(
            "base_url must not carry credentials; store them with PUT .../credentials",
            code="invalid_base_url",
        )
    return base_url.rstrip("/")


class RuntimeService:
    def __init__(self, db: Database, vault: Vault, pool: AdapterPool, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit
        self._vault = vault
        self._pool = pool

    async def health(self, who: Principal, runtime_id: str) -> dict[str, Any]:
        """Ask the runtime itself (with the org-level credentials); raises if it is down."""
        await self.get(who, runtime_id)
        adapter = await self._pool.for_runtime(runtime_id)
        return await adapter.health()

    async def register(
        self, who: Principal, *, name: str, kind: str, base_url: str, config: dict[str, Any]
    ) -> RuntimeView:
        authorize_org_scope(who, Action.RUNTIMES_WRITE)
        registry.check_kind(kind)
        now = utcnow()
        runtime = Runtime(
            new_id("runtime"), who.org_id, name, kind, _check_url(base_url), config, now, now
        )
        async with self._db.write() as conn:
            await repo.insert_runtime(conn, runtime)
            await self._audit.append(conn, entry(
                "runtime.create", ("runtime", runtime.id), actor=who, org_id=who.org_id,
                details={"name": name, "kind": kind, "base_url": runtime.base_url,
                         "config_keys": sorted(config)},
            ))  # fmt: skip
        return RuntimeView(runtime, registry.capabilities(kind), [])

    async def update(
        self,
        who: Principal,
        runtime_id: str,
        *,
        name: str | None,
        base_url: str | None,
        config: dict[str, Any] | None,
    ) -> RuntimeView:
        authorize_org_scope(who, Action.RUNTIMES_WRITE)
        await self._load(who, runtime_id)
        values: dict[str, Any] = {"updated_at": utcnow()}
        if name is not None:
            values["name"] = name
        if base_url is not None:
            values["base_url"] = _check_url(base_url)
        if config is not None:
            values["config"] = config
        async with self._db.write() as conn:
            await repo.update_runtime(conn, runtime_id, **values)
            changed = {k: v for k, v in values.items() if k in ("name", "base_url")}
            await self._audit.append(conn, entry(
                "runtime.update", ("runtime", runtime_id), actor=who, org_id=who.org_id,
                details={**changed, "config_keys": None if config is None else sorted(config)},
            ))  # fmt: skip
        return await self.get(who, runtime_id)

    async def _load(self, who: Principal, runtime_id: str) -> Runtime:
        async with self._db.read() as conn:
            runtime = await repo.get_runtime(conn, runtime_id)
        if runtime is None or runtime.org_id != who.org_id:
            raise NotFound(f"runtime {runtime_id} not found")
        return runtime

    async def get(self, who: Principal, runtime_id: str) -> RuntimeView:
        authorize(who, Action.RUNTIMES_READ)
        runtime = await self._load(who, runtime_id)
        async with self._db.read() as conn:
            infos = await repo.credential_infos(conn, runtime_id)
        return RuntimeView(runtime, registry.capabilities(runtime.kind), self._visible(who, infos))

    def _visible(self, who: Principal, infos: list[CredentialInfo]) -> list[CredentialInfo]:
        if who.is_admin:
            return infos
        # Team-scoped entries of other teams are not shown; agent scopes are checked at write.
        return [i for i in infos if i.scope_type != "team" or i.scope_id == who.team_id]

    async def list_runtimes(
        self,
        who: Principal,
        *,
        kind: str | None,
        name: str | None = None,
        cursor: str | None,
        limit: int | None,
    ) -> Page[RuntimeView]:
        authorize(who, Action.RUNTIMES_READ)
        async with self._db.read() as conn:
            page = await repo.list_runtimes(
                conn, who.org_id, kind=kind, name=name, cursor=cursor, limit=clamp_limit(limit)
            )
            infos = await repo.credential_infos_for(conn, [rt.id for rt in page.items])
        views = [
            RuntimeView(
                rt, registry.capabilities(rt.kind), self._visible(who, infos.get(rt.id, []))
            )
            for rt in page.items
        ]
        return Page(views, page.next_cursor)

    async def _scope(
        self, who: Principal, team_id: str | None, agent_id: str | None
    ) -> tuple[str, str, str | None]:
        """(scope type, scope id, the team it belongs to)."""
        if team_id and agent_id:
            raise InvalidRequest("give team_id or agent_id, not both", code="invalid_scope")
        if agent_id:
            async with self._db.read() as conn:
                agent = await agent_repo.get_agent(conn, agent_id)
            if agent is None or agent.org_id != who.org_id:
                raise NotFound(f"agent {agent_id} not found")
            authorize(who, Action.CREDENTIALS_WRITE, team_id=agent.team_id)
            return "agent", agent_id, agent.team_id
        if team_id:
            authorize(who, Action.CREDENTIALS_WRITE, team_id=team_id)
            return "team", team_id, team_id
        authorize_org_scope(who, Action.CREDENTIALS_WRITE)
        return "org", who.org_id, None

    async def put_credentials(
        self,
        who: Principal,
        runtime_id: str,
        values: dict[str, Any],
        *,
        team_id: str | None,
        agent_id: str | None,
    ) -> RuntimeView:
        scope_type, scope_id, team = await self._scope(who, team_id, agent_id)
        runtime = await self._load(who, runtime_id)
        async with self._db.write() as conn:
            await self._vault.put(
                conn,
                org_id=runtime.org_id,
                runtime_id=runtime_id,
                scope_type=scope_type,
                scope_id=scope_id,
                values=values,
                at=utcnow(),
            )
            await self._audit.append(conn, entry(
                "credential.set", ("runtime", runtime_id), actor=who, org_id=who.org_id,
                team_id=team, details={"scope_type": scope_type, "scope_id": scope_id},
            ))  # fmt: skip
        return await self.get(who, runtime_id)

    async def delete_credentials(
        self, who: Principal, runtime_id: str, *, team_id: str | None, agent_id: str | None
    ) -> RuntimeView:
        scope_type, scope_id, team = await self._scope(who, team_id, agent_id)
        await self._load(who, runtime_id)
        async with self._db.write() as conn:
            found = await repo.delete_secret(conn, runtime_id, scope_type, scope_id)
            if found:
                await self._audit.append(conn, entry(
                    "credential.delete", ("runtime", runtime_id), actor=who, org_id=who.org_id,
                    team_id=team, details={"scope_type": scope_type, "scope_id": scope_id},
                ))  # fmt: skip
        if not found:
            raise NotFound("no credentials stored for that scope")
        return await self.get(who, runtime_id)
