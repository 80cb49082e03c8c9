"""Administering the gateway: upstreams, model routes, session keys, and reading usage.

Every change bumps the governance epoch in its own transaction (so every replica's and worker's
route table follows on its next call) and is audited in that same transaction. Upstream keys are
sealed under the master key; nothing here ever returns one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from corral.audit.log import AuditLog
from corral.audit.record import entry
from corral.domain.errors import Conflict, InvalidRequest, NotFound
from corral.domain.gateway import ModelRoute, Target, Upstream, UpstreamKind
from corral.domain.ids import new_id
from corral.identity.authz import Action, Principal, authorize, authorize_org_scope, visible_team
from corral.store import gateway as repo
from corral.store import governance as governance_repo
from corral.store.db import Database
from corral.store.types import utcnow
from corral.vault.service import Vault, upstream_key_aad

_USAGE_LIMIT = 1000


def _check_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequest("base_url must be an http(s) URL", code="invalid_base_url")
    return base_url.rstrip("/")


class GatewayService:
    def __init__(self, db: Database, vault: Vault, audit: AuditLog) -> None:
        self._db = db
        self._vault = vault
        self._audit = audit

    # -- upstreams ------------------------------------------------------------------------------

    def _sealed(self, upstream_id: str, api_key: str | None) -> dict[str, Any]:
        if api_key is None:
            return {"ciphertext": None, "nonce": None, "wrapped_dek": None, "kek_version": None}
        sealed, version = self._vault.seal(api_key.encode(), upstream_key_aad(upstream_id))
        return {"ciphertext": sealed.ciphertext, "nonce": sealed.nonce,
                "wrapped_dek": sealed.wrapped_dek, "kek_version": version}  # fmt: skip

    async def create_upstream(
        self, who: Principal, *, name: str, kind: UpstreamKind, base_url: str,
        api_key: str | None, timeout_seconds: float, headers: dict[str, str],
    ) -> Upstream:  # fmt: skip
        authorize_org_scope(who, Action.GATEWAY_WRITE)
        now = utcnow()
        upstream_id = new_id("upstream")
        values = {
            "id": upstream_id, "org_id": who.org_id, "name": name, "kind": kind.value,
            "base_url": _check_url(base_url), "timeout_seconds": timeout_seconds,
            "headers": headers, "created_at": now, "updated_at": now,
            **self._sealed(upstream_id, api_key),
        }  # fmt: skip
        async with self._db.write() as conn:
            await repo.insert_upstream(conn, values)
            await governance_repo.bump_epoch(conn)
            await self._audit.append(conn, entry(
                "upstream.create", ("upstream", upstream_id), actor=who, org_id=who.org_id,
                details={"name": name, "kind": kind.value, "base_url": values["base_url"],
                         "key_set": api_key is not None},
            ))  # fmt: skip
            found = await repo.find_upstream(conn, who.org_id, upstream_id)
        assert found is not None
        return found

    async def update_upstream(self, who: Principal, ref: str, changes: dict[str, Any]) -> Upstream:
        """``changes`` may hold base_url, timeout_seconds, headers, api_key (None clears it)."""
        authorize_org_scope(who, Action.GATEWAY_WRITE)
        async with self._db.write() as conn:
            current = await repo.find_upstream(conn, who.org_id, ref)
            if current is None:
                raise NotFound(f"upstream {ref} not found")
            values: dict[str, Any] = {"updated_at": utcnow()}
            for name in ("timeout_seconds", "headers"):
                if name in changes:
                    values[name] = changes[name]
            if "base_url" in changes:
                values["base_url"] = _check_url(changes["base_url"])
            if "api_key" in changes:
                values.update(self._sealed(current.id, changes["api_key"]))
            await repo.update_upstream(conn, current.id, values)
            await governance_repo.bump_epoch(conn)
            shown = {k: v for k, v in changes.items() if k != "api_key"}
            if "api_key" in changes:
                shown["key_set"] = changes["api_key"] is not None
            await self._audit.append(conn, entry(
                "upstream.update", ("upstream", current.id), actor=who, org_id=who.org_id,
                details=shown,
            ))  # fmt: skip
            found = await repo.find_upstream(conn, who.org_id, current.id)
        assert found is not None
        return found

    async def delete_upstream(self, who: Principal, ref: str) -> None:
        authorize_org_scope(who, Action.GATEWAY_WRITE)
        async with self._db.write() as conn:
            current = await repo.find_upstream(conn, who.org_id, ref)
            if current is None:
                raise NotFound(f"upstream {ref} not found")
            users = await repo.upstream_in_use(conn, who.org_id, current.id)
            if users:
                raise Conflict(f"upstream {current.name!r} is a target of {', '.join(users)}",
                               code="upstream_in_use")  # fmt: skip
            await repo.delete_upstream(conn, current.id)
            await governance_repo.bump_epoch(conn)
            await self._audit.append(conn, entry(
                "upstream.delete", ("upstream", current.id), actor=who, org_id=who.org_id,
                details={"name": current.name},
            ))  # fmt: skip

    async def list_upstreams(self, who: Principal) -> list[Upstream]:
        authorize(who, Action.GATEWAY_READ)
        async with self._db.read() as conn:
            return await repo.list_upstreams(conn, who.org_id)

    # -- model routes ---------------------------------------------------------------------------

    async def _targets(
        self, conn: Any, org_id: str, targets: Sequence[tuple[str, str]]
    ) -> tuple[Target, ...]:
        if not targets:
            raise InvalidRequest("a model needs at least one target", code="targets_required")
        resolved = []
        for ref, model in targets:
            upstream = await repo.find_upstream(conn, org_id, ref)
            if upstream is None:
                raise InvalidRequest(f"no upstream {ref!r}", code="unknown_upstream")
            resolved.append(Target(upstream.id, model))
        return tuple(resolved)

    async def put_model(
        self, who: Principal, *, name: str, targets: Sequence[tuple[str, str]],
        aliases: Sequence[str], max_output_tokens: int | None, create_only: bool,
    ) -> ModelRoute:  # fmt: skip
        """Create the route ``name`` (or replace it, unless ``create_only``)."""
        authorize_org_scope(who, Action.GATEWAY_WRITE)
        now = utcnow()
        async with self._db.write() as conn:
            resolved = await self._targets(conn, who.org_id, targets)
            taken = {
                n: r.name for r in await repo.list_models(conn, who.org_id) if r.name != name
                for n in (r.name, *r.aliases)
            }  # fmt: skip
            clash = [a for a in (name, *aliases) if a in taken]
            if clash:
                raise Conflict(f"{clash[0]!r} already names model {taken[clash[0]]!r}",
                               code="model_name_taken")  # fmt: skip
            current = await repo.find_model(conn, who.org_id, name)
            if current is not None and create_only:
                raise Conflict(f"model {name!r} already exists")
            route = ModelRoute(
                id=current.id if current else new_id("model"), org_id=who.org_id, name=name,
                targets=resolved, aliases=tuple(dict.fromkeys(aliases)),
                max_output_tokens=max_output_tokens,
                created_at=current.created_at if current else now, updated_at=now,
            )  # fmt: skip
            if current is None:
                await repo.insert_model(conn, route)
            else:
                await repo.update_model(conn, route)
            await governance_repo.bump_epoch(conn)
            await self._audit.append(conn, entry(
                "model.update" if current else "model.create", ("model", route.id), actor=who,
                org_id=who.org_id, details=repo.route_values(route) | {"created_at": None,
                                                                       "updated_at": None},
            ))  # fmt: skip
        return route

    async def delete_model(self, who: Principal, ref: str) -> None:
        authorize_org_scope(who, Action.GATEWAY_WRITE)
        async with self._db.write() as conn:
            current = await repo.find_model(conn, who.org_id, ref)
            if current is None:
                raise NotFound(f"model {ref} not found")
            await repo.delete_model(conn, current.id)
            await governance_repo.bump_epoch(conn)
            await self._audit.append(conn, entry(
                "model.delete", ("model", current.id), actor=who, org_id=who.org_id,
                details={"name": current.name},
            ))  # fmt: skip

    async def list_models(self, who: Principal) -> list[ModelRoute]:
        authorize(who, Action.GATEWAY_READ)
        async with self._db.read() as conn:
            return await repo.list_models(conn, who.org_id)

    # -- usage ----------------------------------------------------------------------------------

    async def usage(
        self, who: Principal, *, group_by: Sequence[str], filters: dict[str, str],
        since: datetime | None, until: datetime | None, limit: int | None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        authorize(who, Action.USAGE_READ)
        bad = [g for g in group_by if g not in repo.GROUPABLE]
        if bad:
            raise InvalidRequest(f"cannot group by {bad[0]!r}; one of {', '.join(repo.GROUPABLE)}",
                                 code="invalid_group_by")  # fmt: skip
        team = visible_team(who)
        if team is not None:
            filters = {**filters, "team_id": team}
        if since is None and until is None:
            since = utcnow() - timedelta(days=30)
        async with self._db.read() as conn:
            return await repo.usage(
                conn, who.org_id, group_by=list(dict.fromkeys(group_by)), filters=filters,
                since=since, until=until, limit=min(limit or 100, _USAGE_LIMIT),
            )  # fmt: skip

    async def calls(
        self, who: Principal, filters: dict[str, str], limit: int | None
    ) -> list[dict[str, Any]]:
        authorize(who, Action.USAGE_READ)
        team = visible_team(who)
        if team is not None:
            filters = {**filters, "team_id": team}
        async with self._db.read() as conn:
            return await repo.recent_calls(conn, who.org_id, filters, min(limit or 50, 500))
