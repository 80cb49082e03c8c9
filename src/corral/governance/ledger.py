"""The budget ledger: reserve the worst case before a call, settle the real cost after.

Exact across replicas because the database never promises more than a window's room: a replica
*leases* a slice of it (a hold row, under the window's row lock, only if ``spent + reserved +
slice <= limit``) and then reserves from its slice in memory, with no I/O and no await between
the check and the deduction. Settlements are durable before ``settle`` returns, many per
transaction (group commit). Unused slices go back after a short idle time; a dead replica's holds
expire and any replica sweeps them back, so a crash leaks nothing for longer than the hold TTL.

Accounts are strings: ``budget:<id>`` for budgets, ``rate:<key id>`` for request-rate windows.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from corral.domain.ids import new_id
from corral.governance import holds
from corral.governance.holds import Part, Reservation, Shortfall
from corral.store import ledger as repo
from corral.store.db import Database
from corral.store.errors import is_transient
from corral.store.types import utcnow

log = logging.getLogger(__name__)

#: How long a settlement nobody waits for may wait for company before it is committed.
_LINGER = 0.05

__all__ = ["BudgetLedger", "LedgerTimings", "Part", "Reservation", "Shortfall"]


@dataclass
class _Slice:
    account: str
    window: datetime
    hold_id: str | None = None
    held: int = 0  # what our hold row holds (settlements already subtracted)
    outstanding: int = 0  # reserved by live reservations
    version: int = 0
    last_used: float = field(default_factory=time.monotonic)

    @property
    def available(self) -> int:
        return self.held - self.outstanding


@dataclass(frozen=True, slots=True)
class _Entry:
    hold_id: str | None
    account: str
    window: datetime
    spent: int
    backed: int  # part of ``spent`` that came out of our hold


@dataclass(frozen=True, slots=True)
class LedgerTimings:
    hold_ttl: float = 30.0  # a hold outlives its replica by at most this long
    #: A durable (turn) hold whose turn is not running is returned after this long.
    durable_grace: float = 120.0
    idle: float = 2.0  # give an unused slice back after this long
    tick: float = 1.0  # maintenance period


class BudgetLedger:
    def __init__(self, db: Database, holder: str, timings: LedgerTimings | None = None) -> None:
        self._db = db
        self._holder = holder
        self.timings = timings or LedgerTimings()
        self._slices: dict[tuple[str, datetime], _Slice] = {}
        self._live: dict[str, Reservation] = {}
        self._lease_lock = asyncio.Lock()
        self._io_lock = asyncio.Lock()  # settlement writes vs. giving holds back
        self._background: set[asyncio.Future[None]] = set()
        self._retiring: list[_Slice] = []
        self._ids = itertools.count(1)  # reservation ids: only this process ever sees them
        self._pending: list[tuple[list[_Entry], asyncio.Future[None] | None]] = []
        self._lingering = False
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None

    # -- reserve ----------------------------------------------------------------------------

    def _slice(self, part: Part) -> _Slice:
        key = (part.account, part.window)
        found = self._slices.get(key)
        if found is None:
            found = self._slices[key] = _Slice(part.account, part.window, version=part.version)
        return found

    def _short(self, parts: Sequence[Part]) -> list[Part]:
        short = []
        for p in parts:
            s = self._slice(p)
            if s.held - s.outstanding < p.amount or s.version != p.version:
                short.append(p)
        return short

    async def reserve(self, parts: Sequence[Part], ttl: float) -> Reservation | Shortfall:
        """Reserve every part or none; a ``Shortfall`` names the account without room."""
        for _ in range(4):
            short = self._short(parts)
            if not short:
                now = time.monotonic()
                for p in parts:
                    s = self._slice(p)
                    s.outstanding += p.amount
                    s.last_used = now
                reservation = Reservation(f"rsv-{next(self._ids)}", tuple(parts), now + ttl)
                self._live[reservation.id] = reservation
                return reservation
            failed = await self._lease(short)
            if failed is not None:
                return failed
        # Others kept taking what we leased: report the tightest part as short.
        p = short[0]
        return Shortfall(p.account, p.limit, max(0, self._slice(p).available))

    async def _lease(self, short: list[Part]) -> Shortfall | None:
        async with self._lease_lock:
            short = self._short(short)  # someone else may have leased while we waited
            if not short:
                return None
            now = utcnow()
            expires = now + timedelta(seconds=self.timings.hold_ttl)
            failed: Shortfall | None = None
            short = sorted(short, key=lambda p: (p.account, p.window))
            async with self._db.write() as conn:
                await repo.lock_windows(conn, [(p.account, p.window) for p in short])
                for p in short:
                    s = self._slice(p)
                    if s.version != p.version and s.hold_id is not None:
                        # The limit changed: what we hold beyond live reservations goes back.
                        back = max(0, s.available)
                        if await repo.shrink_hold(conn, s.hold_id, p.account, p.window, back):
                            s.held -= back
                        else:
                            s.hold_id, s.held = None, 0
                    s.version = p.version
                    limit, room = await holds.room(conn, p)
                    need = p.amount - s.available
                    if room < need:
                        failed = failed or Shortfall(p.account, limit, max(0, room + s.available))
                        continue
                    grant = min(room, max(need, limit // 20, min(need * 16, limit)))
                    await repo.add_reserved(conn, p.account, p.window, grant)
                    if s.hold_id is None or not await repo.grow_hold(
                        conn, s.hold_id, grant, expires
                    ):
                        if s.hold_id is not None:  # our hold was swept: its room went back
                            s.held = 0
                        s.hold_id = new_id("hold")
                        await repo.insert_hold(
                            conn, hold_id=s.hold_id, account=p.account, window=p.window,
                            holder=self._holder, amount=grant, expires_at=expires,
                        )  # fmt: skip
                    s.held += grant
            return failed

    # -- durable reservations (turns) -------------------------------------------------------

    async def reserve_held(self, holder: str, parts: Sequence[Part]) -> Reservation | Shortfall:
        """Reserve in the database itself, under ``holder`` (see ``holds``)."""
        expires = utcnow() + timedelta(seconds=self.timings.durable_grace)
        got = await holds.reserve(self._db, holder, parts, expires)
        if isinstance(got, Shortfall):
            return got
        return Reservation(f"rsv-{next(self._ids)}", tuple(parts), 0.0, holder=holder)

    async def settle_held(self, holder: str, cost: int) -> list[tuple[str, datetime]]:
        """Settle a durable reservation at ``cost`` (from any replica); the windows it touched."""
        async with self._io_lock:
            return await holds.settle(self._db, holder, cost)

    # -- settle -----------------------------------------------------------------------------

    async def settle(self, reservation: Reservation, cost: int) -> None:
        """Replace the reservation by the real ``cost``; durable when this returns."""
        if reservation.settled:
            return
        reservation.settled = True
        if reservation.holder is not None:
            await self.settle_held(reservation.holder, cost)
            return
        await self._commit(self._settled(reservation, cost))

    def settle_nowait(self, reservation: Reservation, cost: int) -> None:
        """``settle`` without waiting for the write: the memory is updated now, the database
        with the next group commit (the gateway's calls: the answer is already out)."""
        if reservation.settled or reservation.holder is not None:
            return
        reservation.settled = True
        entries = self._settled(reservation, cost)
        if self._flusher is None:
            task = asyncio.ensure_future(self._commit(entries))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return
        self._pending.append((entries, None))
        if not self._lingering:
            # Nobody waits: it goes with the next commit, at the latest after the linger.
            self._lingering = True
            asyncio.get_running_loop().call_later(_LINGER, self._linger_over)

    def _linger_over(self) -> None:
        self._lingering = False
        self._wake.set()

    def _settled(self, reservation: Reservation, cost: int) -> list[_Entry]:
        self._live.pop(reservation.id, None)
        entries = []
        now = time.monotonic()
        for p in reservation.parts:
            spent = p.amount if p.fixed else cost
            s = self._slice(p)
            s.outstanding -= p.amount
            backed = max(0, min(spent, s.held)) if s.hold_id is not None else 0
            s.held -= backed
            s.last_used = now
            entries.append(_Entry(s.hold_id, p.account, p.window, spent, backed))
        return entries

    async def charge(self, keys: Sequence[tuple[str, datetime]], cost: int) -> None:
        """Record spend nothing was reserved for; durable when this returns."""
        await self._commit([_Entry(None, a, w, cost, 0) for a, w in keys])

    def settle_soon(self, reservation: Reservation) -> None:
        """Settle at the reserved amounts without waiting for the write (request counters:
        the count is already taken in memory; the database learns it with the next batch)."""
        task = asyncio.ensure_future(self.settle(reservation, 0))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def release(self, reservation: Reservation) -> None:
        """Drop a reservation whose call never happened; nothing was spent."""
        if reservation.settled:
            return
        if reservation.holder is not None:
            # Durable: given back in the database; settled at 0 by whoever calls ``settle``,
            # or by the sweeper once the turn is known not to run.
            return
        reservation.settled = True
        self._live.pop(reservation.id, None)
        for p in reservation.parts:
            self._slice(p).outstanding -= p.amount

    async def _commit(self, entries: list[_Entry]) -> None:
        if self._flusher is None:  # not started (tests, one-off tools): write through
            async with self._io_lock:
                await self._write(entries)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((entries, done))
        self._wake.set()
        await done

    async def _write(self, entries: list[_Entry]) -> None:
        for attempt in range(4):
            try:
                await self._write_once(entries)
                return
            except Exception as exc:
                if attempt == 3 or not is_transient(exc):
                    raise
                log.info("ledger write lost a deadlock; retrying")

    async def _write_once(self, entries: list[_Entry]) -> None:
        merged: dict[tuple[str | None, str, datetime], list[int]] = {}
        for e in entries:
            sums = merged.setdefault((e.hold_id, e.account, e.window), [0, 0])
            sums[0] += e.spent
            sums[1] += e.backed
        async with self._db.write() as conn:
            await repo.lock_windows(conn, [(a, w) for _, a, w in merged])
            wanted = [h for (h, _, _), (_, backed) in merged.items() if h is not None and backed]
            alive = await repo.live_holds(conn, wanted)
            holds: list[tuple[str, int]] = []
            windows: dict[tuple[str, datetime], tuple[int, int]] = {}
            unheld: list[tuple[str, datetime]] = []
            for (hold_id, account, window), (spent, backed) in merged.items():
                # A hold swept meanwhile was already given back: its part is not released twice.
                released = backed if hold_id in alive else 0
                if released:
                    holds.append((hold_id, released))  # type: ignore[arg-type]
                if hold_id is None:
                    unheld.append((account, window))
                before = windows.get((account, window), (0, 0))
                windows[(account, window)] = (before[0] + spent, before[1] + released)
            await repo.apply_settlements(conn, holds, windows, create=unheld)

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            async with self._io_lock:
                await self._drain()

    async def _drain(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            await self._write([e for entries, _ in batch for e in entries])
        except Exception as exc:
            for _, done in batch:
                if done is None:
                    log.error("ledger settlement lost: %s", exc)
                elif not done.done():
                    done.set_exception(exc)
            return
        for _, done in batch:
            if done is not None and not done.done():
                done.set_result(None)

    # -- upkeep -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop(), name="ledger-flush")
            self._ticker = asyncio.create_task(self._tick_loop(), name="ledger-upkeep")

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.timings.tick)
            try:
                await self.upkeep()
            except Exception:
                log.exception("budget ledger upkeep failed; retrying")

    async def upkeep(self, *, give_back_all: bool = False) -> None:
        """Expire forgotten reservations, give idle slices back, renew holds, sweep dead ones."""
        mono = time.monotonic()
        for reservation in [r for r in self._live.values() if r.expires <= mono]:
            log.warning("reservation %s expired unsettled; releasing it", reservation.id)
            self.release(reservation)
        now = utcnow()
        # Queued settlements go first: a hold is only given back once nothing pending refers
        # to it, so the window's reservations and the hold rows stay in step.
        async with self._io_lock, self._lease_lock:
            await self._drain()
            idle = [
                s
                for s in self._slices.values()
                if s.outstanding <= 0 and (give_back_all or mono - s.last_used >= self.timings.idle)
            ]
            # Retired before the first await: a reservation arriving meanwhile leases afresh.
            # They stay on the retiring list until the database took them back, so a failed
            # or cancelled write is retried (by the next pass, or by aclose).
            for s in idle:
                self._slices.pop((s.account, s.window), None)
                self._retiring.append(s)
            async with self._db.write() as conn:
                for s in self._retiring:
                    if s.hold_id is not None:
                        await repo.shrink_hold(conn, s.hold_id, s.account, s.window, s.held)
                        await repo.drop_hold(conn, s.hold_id)
                alive = await repo.renew_holds(
                    conn, self._holder, now + timedelta(seconds=self.timings.hold_ttl)
                )
            self._retiring.clear()
            for s in self._slices.values():
                if s.hold_id is not None and s.hold_id not in alive:
                    log.warning("hold on %s was swept; leasing afresh", s.account)
                    s.hold_id, s.held = None, 0
            # Its own transaction: it locks windows, and the one above holds hold rows.
            async with self._db.write() as conn:
                await repo.sweep_expired(
                    conn, now, grace=timedelta(seconds=self.timings.durable_grace)
                )

    async def aclose(self) -> None:
        """Settle what is queued and give every slice back (a clean stop leaks nothing)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for task in (self._ticker,):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._flusher is not None:
            while self._pending:
                self._wake.set()
                await asyncio.sleep(0.01)
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        for reservation in list(self._live.values()):
            self.release(reservation)
        with contextlib.suppress(Exception):
            await self.upkeep(give_back_all=True)
