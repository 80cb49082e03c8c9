"""Adapters for sessions: credentials resolved at call time, one adapter per runtime identity.

An adapter holds a connection pool and (for OpenCode) the one event subscription to its server,
so adapters are shared by every session on the same runtime with the same credentials. The key
includes the runtime's ``updated_at`` and the secret's version stamp: editing either builds a
fresh adapter on the next call; the stale one is closed at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib

from corral.domain.errors import NotFound
from corral.domain.records import Runtime
from corral.runtimes import registry
from corral.runtimes.base import RuntimeAdapter, RuntimeTarget
from corral.store import runtimes as runtime_repo
from corral.store.db import Database
from corral.vault.service import Vault


class AdapterPool:
    def __init__(self, db: Database, vault: Vault) -> None:
        self._db = db
        self._vault = vault
        self._adapters: dict[tuple[str, str | None], tuple[str, RuntimeAdapter]] = {}
        self._retired: list[RuntimeAdapter] = []
        self._lock = asyncio.Lock()

    async def for_runtime(
        self, runtime_id: str, *, team_id: str | None = None, agent_id: str | None = None
    ) -> RuntimeAdapter:
        async with self._db.read() as conn:
            runtime = await runtime_repo.get_runtime(conn, runtime_id)
            if runtime is None:
                raise NotFound(f"runtime {runtime_id} not found")
            creds = await self._vault.resolve(
                conn,
                runtime_id=runtime_id,
                org_id=runtime.org_id,
                team_id=team_id,
                agent_id=agent_id,
            )
        key = (runtime_id, creds.secret_id if creds else None)
        stamp = f"{runtime.updated_at.isoformat()}|{creds.version_stamp if creds else ''}"
        async with self._lock:
            cached = self._adapters.get(key)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            adapter = registry.build(_target(runtime, creds.values if creds else None))
            self._adapters[key] = (stamp, adapter)
            if cached is not None:
                # Sessions pumping through the old adapter keep it until shutdown.
                self._retired.append(cached[1])
        return adapter

    async def aclose(self) -> None:
        async with self._lock:
            adapters = [adapter for _, adapter in self._adapters.values()] + self._retired
            self._adapters.clear()
            self._retired = []
        for adapter in adapters:
            with contextlib.suppress(Exception):
                await adapter.aclose()


def _target(runtime: Runtime, credentials: dict[str, object] | None) -> RuntimeTarget:
    return RuntimeTarget(
        runtime_id=runtime.id,
        kind=runtime.kind,
        base_url=runtime.base_url,
        config=runtime.config,
        credentials=credentials,
    )
