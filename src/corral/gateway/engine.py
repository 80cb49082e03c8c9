"""The gateway's long-lived parts, shared by every call: keys, routes, governor, upstreams.

The route table is rebuilt whenever the governance epoch moves (every change to upstreams or
model routes bumps it, like every other change that can alter a decision), so all replicas and
gateway workers pick a change up the way they pick up a revoked key.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from corral.gateway.auth import KeyCache
from corral.gateway.recorder import CallRecorder
from corral.gateway.routing import RouteTable
from corral.gateway.upstream import Upstreams
from corral.governance.governor import Governor
from corral.store import gateway as repo
from corral.store import governance as governance_repo
from corral.store.db import Database
from corral.vault import envelope
from corral.vault.service import Vault, upstream_key_aad

log = logging.getLogger(__name__)


@dataclass
class Gateway:
    db: Database
    vault: Vault
    governor: Governor
    keys: KeyCache
    recorder: CallRecorder
    upstreams: Upstreams = field(default_factory=Upstreams)
    max_output_tokens: int = 4096
    max_body_bytes: int = 32 * 1024 * 1024
    #: Off only for the benchmark's baseline: no trace context is read, made or passed on.
    traced: bool = True
    _table: RouteTable | None = None
    _reload: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def routes(self) -> RouteTable:
        """The route table, at least as fresh as the governance snapshot."""
        snap = await self.governor.snapshot()
        table = self._table
        if table is not None and table.epoch >= snap.epoch:
            return table
        async with self._reload:
            table = self._table
            if table is None or table.epoch < snap.epoch:
                table = self._table = await self._load()
            return table

    async def _load(self) -> RouteTable:
        async with self.db.read() as conn:
            epoch = await governance_repo.read_epoch(conn)
            rows = await repo.sealed_upstreams(conn)
            routes = await repo.list_models(conn, None)
        upstreams = []
        for upstream, row in rows:
            key = None
            if row["ciphertext"] is not None:
                try:
                    box = envelope.Sealed(row["ciphertext"], row["nonce"], row["wrapped_dek"])
                    aad = upstream_key_aad(upstream.id)
                    key = self.vault.unseal(box, row["kek_version"], aad).decode()
                except Exception:
                    log.exception("upstream %s: its key cannot be unsealed", upstream.name)
            upstreams.append((upstream, key))
        log.debug("gateway routes at epoch %s: %s models", epoch, len(routes))
        return RouteTable(upstreams, routes, epoch)

    def start(self) -> None:
        self.recorder.start()

    async def aclose(self) -> None:
        await self.recorder.aclose()
        await self.upstreams.aclose()
