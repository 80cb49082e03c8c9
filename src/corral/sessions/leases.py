"""Run leases: each running turn is pumped by exactly one Corral instance at a time.

The instance that starts a turn holds its lease and renews it while its pump lives. A keeper
loop on every instance renews its own leases and claims turns whose lease expired (their
owner died) or that it owned before a restart, then hands each claimed turn to recovery, the
same path a first start takes. A duplicate claim is harmless: claiming is one conditional
UPDATE, and recording dedupes by native id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from corral.sessions.pump import PumpRegistry
from corral.store import leases as repo
from corral.store.db import Database
from corral.store.leases import RunningTurn
from corral.store.types import utcnow

log = logging.getLogger(__name__)

#: After a restart, turns that ended this recently are checked for trailing runtime reports.
RECENT_END_WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class LeaseTerms:
    owner: str
    seconds: float
    check_every: float

    def until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.seconds)


class LeaseKeeper:
    def __init__(
        self,
        db: Database,
        pumps: PumpRegistry,
        terms: LeaseTerms,
        recover: Callable[[RunningTurn], Awaitable[None]],
        backfill_ended: Callable[[RunningTurn], Awaitable[None]] | None = None,
    ) -> None:
        self._db = db
        self._pumps = pumps
        self._terms = terms
        self._recover = recover
        self._backfill_ended = backfill_ended
        self._task: asyncio.Task[None] | None = None
        self._recovering: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lease-keeper")

    async def tick(self) -> list[str]:
        """Renew this instance's leases, claim orphaned turns, start recovering them."""
        now = utcnow()
        until = self._terms.until(now)
        live = self._pumps.live_turns()
        async with self._db.write() as conn:
            lost = await repo.renew(conn, self._terms.owner, list(live), until)
        for turn_id in lost:  # another instance took it over: stop pumping it
            self._pumps.drop(live[turn_id])
        async with self._db.read() as conn:
            candidates = await repo.claimable(conn, self._terms.owner, now, limit=100)
        claimed: list[str] = []
        for turn in candidates:
            if turn.turn_id in self._recovering or turn.turn_id in live:
                continue
            async with self._db.write() as conn:
                if not await repo.claim(conn, turn.turn_id, self._terms.owner, now, until):
                    continue
            claimed.append(turn.turn_id)
            self._recovering.add(turn.turn_id)
            task = asyncio.create_task(self._recover_one(turn), name=f"recover-{turn.turn_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return claimed

    async def _recover_one(self, turn: RunningTurn) -> None:
        try:
            await self._recover(turn)
        except Exception as exc:  # the lease stays ours; the next tick renews or retries
            log.warning("recovering turn %s of %s failed: %s", turn.turn_id, turn.session_id, exc)
        finally:
            self._recovering.discard(turn.turn_id)

    async def _after_restart(self) -> None:
        """Once at start: backfill the turns this instance ended just before it last stopped."""
        if self._backfill_ended is None:
            return
        since = utcnow() - timedelta(seconds=RECENT_END_WINDOW)
        async with self._db.read() as conn:
            ended = await repo.recently_ended(conn, self._terms.owner, since, limit=500)
        for turn in ended:
            try:
                await self._backfill_ended(turn)
            except Exception as exc:
                log.warning("backfilling ended turn %s failed: %s", turn.turn_id, exc)

    async def _run(self) -> None:
        try:
            await self._after_restart()
        except Exception:
            log.exception("backfill after restart failed")
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("lease keeper tick failed")
            await asyncio.sleep(self._terms.check_every)

    async def aclose(self, *, release: bool = True) -> None:
        for task in [self._task, *self._tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if release:
            # A clean stop hands the turns over at once instead of after the lease expires.
            with contextlib.suppress(Exception):
                async with self._db.write() as conn:
                    await repo.release_all(conn, self._terms.owner)
