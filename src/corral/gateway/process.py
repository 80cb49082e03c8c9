"""The gateway on its own: ``corral gateway --workers N``, sharing the ledger through the database.

Each worker is a process with its own event loop, key cache, route table and budget slices; they
agree through the database exactly as ``corral serve`` replicas do (slices leased under the
budget window's row lock, one governance epoch). Nothing of the session machinery is loaded,
which keeps a worker small and quick to start. The database must already be migrated (``corral
db migrate``): workers starting together must not race to migrate it.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import sys
from typing import Any

from corral.assembly import governance_core
from corral.audit.log import AuditLog
from corral.config import Settings
from corral.domain.events import EventDraft
from corral.gateway.app import GatewayApp
from corral.gateway.auth import KeyCache
from corral.gateway.call import Receive, Scope, Send
from corral.gateway.engine import Gateway
from corral.gateway.recorder import CallRecorder, SpanSink
from corral.gc_policy import tune_for_serving
from corral.governance.governor import Governor
from corral.sessions.writer import EventWriter
from corral.store import schema_version
from corral.store.db import Database
from corral.telemetry.metrics import Metrics
from corral.telemetry.tracing import SpanPipeline, otlp_exporter_from_env, resource_for
from corral.vault import keyring
from corral.vault.service import Vault

log = logging.getLogger(__name__)

WORKER_POOL = 4
_M_ARENA_MAX = -8  # mallopt parameter number (malloc.h)

#: A standalone worker re-checks the governance epoch this often at most (it has no NOTIFY
#: listener): a revoked key or a changed route is honoured within this.
WORKER_EPOCH_CHECK_SECONDS = 0.5


def build_gateway(
    settings: Settings,
    db: Database,
    vault: Vault,
    governor: Governor,
    metrics: Metrics | None,
    writer: EventWriter | None,
    spans: SpanSink | None = None,
    audit: AuditLog | None = None,
) -> Gateway:
    """The gateway's parts, for ``corral serve`` and for ``corral gateway`` workers alike."""

    async def session_usage(session_id: str, drafts: list[EventDraft]) -> None:
        assert writer is not None
        await writer.record(session_id, drafts, turn_id=None)

    recorder = CallRecorder(
        db,
        on_session_usage=session_usage if writer is not None else None,
        metrics=metrics,
        spans=spans,
        audit=audit,
    )
    return Gateway(
        db=db,
        vault=vault,
        governor=governor,
        keys=KeyCache(db, vault.hash_key, ttl=settings.gateway_key_cache_seconds),
        recorder=recorder,
        max_output_tokens=settings.gateway_max_output_tokens,
        max_body_bytes=settings.gateway_max_body_bytes,
    )


class _Worker:
    """One worker's parts. ``observed=False`` (the benchmark's baseline only) leaves out what
    tracing and audit add to a call: trace context, span export, the batches' audit seals and
    the decision records."""

    def __init__(self, settings: Settings, *, observed: bool = True) -> None:
        self.settings = settings
        # A worker's writes are batched (a few commits a second) and its reads rare: a small
        # pool keeps it small (on SQLite each connection is a thread with its own cache).
        self.db = Database(
            settings.database_url,
            pool_size=min(settings.db_pool_size, WORKER_POOL),
            max_overflow=min(settings.db_max_overflow, WORKER_POOL),
        )
        self.vault = Vault(keyring.load(settings.master_key, settings.key_file))
        core = governance_core(
            settings, self.db, self.vault,
            holder=f"gateway:{settings.instance()}#{os.getpid()}-{os.urandom(3).hex()}",
            check_every=min(settings.governance_check_seconds, WORKER_EPOCH_CHECK_SECONDS),
            audit_decisions=observed,
        )  # fmt: skip
        self.audit, self.governor = core.audit, core.governor
        self.writer = EventWriter(self.db)
        metrics = Metrics()
        # Calls are traced from their rows: a pipeline is needed only to export to a collector.
        exporter = otlp_exporter_from_env()
        self.spans = None
        if exporter is not None and observed:
            self.spans = SpanPipeline(
                self.db, metrics, exporter=exporter, resource=resource_for(settings.instance())
            )
        self.gateway = build_gateway(
            settings, self.db, self.vault, self.governor, metrics, self.writer,
            None if self.spans is None else self.spans.export, self.audit if observed else None,
        )  # fmt: skip
        self.gateway.traced = observed
        self.app = GatewayApp(self.gateway)

    async def start(self) -> None:
        current = await schema_version.current_revision(self.db)
        head = schema_version.head_revision()
        if current != head:
            raise RuntimeError(
                f"the database is at schema revision {current}, not {head}: "
                "run `corral db migrate` first"
            )
        self.db.start_checkpoints()
        await self.audit.open()
        self.audit.start()
        self.governor.ledger.start()
        self.gateway.start()
        await self.gateway.routes()  # warm: the first call should not pay for the load

    async def aclose(self) -> None:
        await self.gateway.aclose()
        if self.spans is not None:
            await self.spans.aclose()
        await self.governor.ledger.aclose()
        await self.writer.aclose()
        await self.audit.aclose()
        await self.db.dispose()


class StandaloneGateway:
    """The ASGI app of one worker: built at lifespan startup, closed at shutdown."""

    def __init__(self, settings: Settings | None = None, *, observed: bool = True) -> None:
        self._settings = settings or Settings()
        self._observed = observed
        self._worker: _Worker | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        assert self._worker is not None, "the gateway serves only after its lifespan started"
        await self._worker.app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self._worker = _Worker(self._settings, observed=self._observed)
                    await self._worker.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                tune_for_serving(asyncio.get_running_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._worker is not None:
                    await self._worker.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def few_malloc_arenas() -> None:
    """Cap glibc's malloc arenas (one per thread by default, each keeping freed memory): the
    database threads then share two, which takes tens of MB off a worker's resident size."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        pass  # not glibc (musl, say): nothing to tune


def create_app() -> Any:
    """uvicorn's factory (each worker process calls it): settings from CORRAL_* variables."""
    few_malloc_arenas()
    return StandaloneGateway()
