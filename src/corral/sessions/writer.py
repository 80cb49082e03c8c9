"""Group commit for the pumps: many sessions' new events in one transaction.

Each native event a pump maps is one small write (lock the session row, dedupe, append, advance
``last_seq``). Under load, paying a transaction per event (checkout, BEGIN, COMMIT, a WAL flush)
costs more than the work itself. Writes queue here instead; a lane takes everything queued while
its previous commit was in flight and commits it as one transaction, so batches grow with load
and a lone write still goes straight through. Under load a lane also paces its commits (at most
one every ``PACE``), which keeps a replica's transactions near 100 a second whether it records
a few hundred events a second or several thousand; a write waits at most ``PACE`` for it.
A session always uses the same lane, so its writes keep their order. If a batch fails, each
write is retried alone, so one bad write never fails another session's.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from dataclasses import dataclass, field

from corral.domain.events import Event, EventDraft
from corral.sessions.batch import Write, record_all
from corral.store.db import Database
from corral.store.types import utcnow

MAX_BATCH = 1000  # writes per transaction: bounds how long session rows stay locked
#: Under load, a commit starts at most this long after the previous one began.
PACE = 0.01


@dataclass
class _Write:
    write: Write
    done: asyncio.Future[list[Event]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _Lane:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: list[_Write] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def submit(self, write: _Write) -> None:
        self._queue.append(write)
        self._ready.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="event-writer")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        began = -PACE
        while True:
            await self._ready.wait()
            self._ready.clear()
            # Under load, commits start at most every PACE seconds, so what arrives meanwhile
            # joins the next batch: the number of transactions stops growing with the event
            # rate (each costs far more CPU than the rows it carries). A write arriving after a
            # quiet spell goes straight through.
            while self._queue:
                pause = began + PACE - loop.time()
                if pause > 0:
                    await asyncio.sleep(pause)
                began = loop.time()
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                await self._commit(batch)

    async def _commit(self, batch: list[_Write]) -> None:
        # record_all locks the batch's session rows in id order and keeps each session's writes
        # in the order given, so two lanes, or two replicas, never wait on each other in a cycle.
        ordered = batch
        try:
            async with self._db.write() as conn:
                results = await record_all(conn, [w.write for w in ordered], utcnow())
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0].done.done():
                    batch[0].done.set_exception(exc)
                return
            for w in ordered:
                await self._commit([w])
            return
        for w, stored in zip(ordered, results, strict=True):
            if not w.done.done():
                w.done.set_result(stored)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for write in self._queue:  # never committed: their runtimes' events get backfilled
            write.done.cancel()
        self._queue.clear()


class EventWriter:
    def __init__(self, db: Database, lanes: int | None = None) -> None:
        # One lane batches best: on SQLite there is one writer at a time anyway, and on
        # PostgreSQL a lane with its pace commits thousands of events a second.
        count = lanes if lanes is not None else 1
        self._lanes = [_Lane(db) for _ in range(count)]

    async def record(
        self, session_id: str, drafts: list[EventDraft], *, turn_id: str | None
    ) -> list[Event]:
        """Record ``drafts`` for the session (see :func:`recorder.record`) once committed."""
        write = _Write(Write(session_id, drafts, turn_id))
        self._lanes[zlib.crc32(session_id.encode()) % len(self._lanes)].submit(write)
        return await write.done

    async def aclose(self) -> None:
        for lane in self._lanes:
            await lane.aclose()
