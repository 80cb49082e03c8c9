"""The services one Corral process runs, built once from settings and shut down together."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from corral.config import Settings
from corral.fleet.agents import AgentService
from corral.fleet.runtimes import RuntimeService
from corral.identity.service import Bootstrap, IdentityService
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
    listener: PostgresListener | None = None
    bootstrap: Bootstrap | None = None

    def drain(self) -> None:
        """Begin a graceful shutdown: refuse new turns, end streams with a reconnect hint."""
        self.sessions.drain()

    def start(self) -> None:
        """Start the background work: lease renewal and recovery of orphaned turns.

        The first pass runs at once, so turns this instance owned before a restart are picked
        up again immediately.
        """
        self.leases.start()
        if self.listener is not None:
            self.listener.start()

    async def aclose(self) -> None:
        if self.listener is not None:
            await self.listener.aclose()
        await self.leases.aclose()
        await self.pumps.aclose()
        await self.writer.aclose()
        await self.pool.aclose()
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
    listener = PostgresListener(db.url, hub, db.origin) if db.is_postgres else None
    if listener is not None:
        hub.complete = listener.connected.is_set
    services = Services(
        settings=settings,
        db=db,
        vault=vault,
        identity=IdentityService(db, vault.hash_key),
        runtimes=RuntimeService(db, vault, pool),
        agents=AgentService(db),
        sessions=SessionService(db, hub, pool, pumps, terms),
        pool=pool,
        pumps=pumps,
        writer=writer,
        leases=LeaseKeeper(db, pumps, terms, recovery, recovery.backfill_ended),
        listener=listener,
    )
    services.bootstrap = await services.identity.bootstrap(
        settings.bootstrap_org, settings.bootstrap_admin_email
    )
    return services
