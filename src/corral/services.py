"""The services one Corral process runs, built once from settings and shut down together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass

from corral.assembly import governance_core
from corral.audit.log import AuditLog
from corral.audit.service import AuditService
from corral.config import Settings
from corral.fleet.agents import AgentService
from corral.fleet.runtimes import RuntimeService
from corral.gateway.app import GatewayApp
from corral.gateway.engine import Gateway
from corral.gateway.process import build_gateway
from corral.gateway.service import GatewayService
from corral.governance.governor import Governor
from corral.governance.pricing import PriceService
from corral.governance.service import GovernanceService
from corral.identity.service import Bootstrap, IdentityService
from corral.sessions.backstop import Backstop
from corral.sessions.connections import AdapterPool
from corral.sessions.hub import EventHub
from corral.sessions.leases import LeaseKeeper, LeaseTerms
from corral.sessions.notify import PostgresListener
from corral.sessions.pump import PumpRegistry, PumpTimings
from corral.sessions.recovery import TurnRecovery
from corral.sessions.service import SessionService
from corral.sessions.writer import EventWriter
from corral.store import migrate
from corral.store.db import Database
from corral.store.governance import GOVERNANCE_CHANNEL
from corral.telemetry.service import Telemetry
from corral.telemetry.tracing import otlp_exporter_from_env
from corral.vault import keyring
from corral.vault.service import Vault

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Database
    vault: Vault
    identity: IdentityService
    runtimes: RuntimeService
    agents: AgentService
    sessions: SessionService
    pool: AdapterPool
    pumps: PumpRegistry
    writer: EventWriter
    leases: LeaseKeeper
    governor: Governor
    governance: GovernanceService
    prices: PriceService
    audit: AuditLog
    audit_reader: AuditService
    telemetry: Telemetry
    gateway: Gateway
    gateway_admin: GatewayService
    gateway_app: GatewayApp
    backstop: Backstop | None = None
    listener: PostgresListener | None = None
    bootstrap: Bootstrap | None = None
    _ticker: asyncio.Task[None] | None = None

    def drain(self) -> None:
        """Begin a graceful shutdown: refuse new turns, end streams with a reconnect hint."""
        self.sessions.drain()

    def start(self) -> None:
        """Start the background work: lease renewal and recovery of orphaned turns.

        The first pass runs at once, so turns this instance owned before a restart are picked
        up again immediately.
        """
        self.db.start_checkpoints()
        self.leases.start()
        self.governor.ledger.start()
        self.audit.start()
        self.telemetry.start()
        self.gateway.start()
        self._ticker = asyncio.create_task(self._governance_loop(), name="governance-tick")
        if self.backstop is not None:
            self.backstop.start()
        if self.listener is not None:
            self.listener.start()

    async def _governance_loop(self) -> None:
        """Expire unanswered approvals to deny; stop turns past their wall-clock limit."""
        while True:
            await asyncio.sleep(self.settings.governance_tick_seconds)
            try:
                await self.sessions.governance_tick()
            except Exception:
                log.exception("governance upkeep failed; retrying")

    async def aclose(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self.listener is not None:
            await self.listener.aclose()
        if self.backstop is not None:
            await self.backstop.aclose()
        await self.leases.aclose()
        await self.pumps.aclose()
        await self.sessions.oversight.settlement.due(everything=True)
        await self.gateway.aclose()  # before the ledger: its last settlements go in
        await self.governor.ledger.aclose()
        await self.writer.aclose()
        await self.telemetry.aclose()  # after the pumps: their last events are traced
        await self.pool.aclose()
        await self.audit.aclose()
        await self.db.optimize()
        await self.db.dispose()


def load_keyring(settings: Settings) -> keyring.Keyring:
    return keyring.load(settings.master_key, settings.key_file)


async def build(settings: Settings) -> Services:
    db = Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    if settings.auto_migrate:
        await migrate.upgrade(db)
    await db.optimize()
    vault = Vault(load_keyring(settings), reload=lambda: load_keyring(settings))
    hub = EventHub()
    pool = AdapterPool(db, vault)
    timings = PumpTimings(grace=settings.pump_grace_seconds, silence=settings.pump_silence_seconds)
    writer = EventWriter(db)
    pumps = PumpRegistry(writer, hub, timings)
    terms = LeaseTerms(settings.instance(), settings.lease_seconds, settings.lease_check_seconds)
    recovery = TurnRecovery(db, pool, pumps)
    db.origin = settings.instance()
    # Holds are per process, not per instance id: a restarted replica must not renew (and so
    # keep forever) the holds its previous life leased; those expire and are swept.
    core = governance_core(
        settings, db, vault, holder=f"{settings.instance()}#{os.urandom(4).hex()}",
        check_every=settings.governance_check_seconds,
    )  # fmt: skip
    audit, governor = core.audit, core.governor
    await audit.open()
    telemetry = Telemetry(
        db,
        content=settings.trace_content,
        grace=settings.pump_grace_seconds,
        instance=settings.instance(),
        has_pump=lambda session_id: pumps.get(session_id) is not None,
        budget_levels=governor.remaining,
        exporter=otlp_exporter_from_env(),
    )
    hub.taps.append(telemetry.on_events)
    governor.listeners.append(telemetry.on_decision)
    listener = PostgresListener(db.url, hub, db.origin) if db.is_postgres else None
    if listener is not None:
        hub.complete = listener.connected.is_set
        listener.listen(
            GOVERNANCE_CHANNEL, lambda p: governor.invalidate(int(p) if p.isdigit() else None)
        )
    gateway = build_gateway(
        settings,
        db,
        vault,
        governor,
        telemetry.metrics,
        writer,
        telemetry.pipeline.export if telemetry.pipeline.exports else None,
        audit,
    )
    services = Services(
        settings=settings,
        db=db,
        vault=vault,
        identity=IdentityService(db, vault.hash_key, audit),
        runtimes=RuntimeService(db, vault, pool, audit),
        agents=AgentService(db, audit),
        sessions=SessionService(db, hub, pool, pumps, terms, governor, audit),
        pool=pool,
        pumps=pumps,
        writer=writer,
        leases=LeaseKeeper(db, pumps, terms, recovery, recovery.backfill_ended),
        governor=governor,
        governance=GovernanceService(db, governor, audit),
        prices=PriceService(db, governor, audit),
        audit=audit,
        audit_reader=AuditService(db),
        telemetry=telemetry,
        gateway=gateway,
        gateway_admin=GatewayService(db, vault, audit),
        gateway_app=GatewayApp(gateway),
        backstop=Backstop(
            db, hub, interval=settings.sse_backstop_seconds, poll=settings.sse_poll_seconds
        ),
        listener=listener,
    )
    services.bootstrap = await services.identity.bootstrap(
        settings.bootstrap_org, settings.bootstrap_admin_email
    )
    return services
