"""The safety net under stream notifications: one store read for every followed session.

Streams are woken by notifications (the pumps' own commits, PostgreSQL NOTIFY from other
replicas). Should one be missed, readers must still catch up, and soon if notifications are
known to be incomplete (the LISTEN connection is down). Rather than every stream re-reading
its session's log on a timer, which with a thousand streams is a thousand reads in a burst,
the backstop reads the ``last_seq`` of every followed session in one query per interval and
wakes only the readers whose tail is behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from corral.sessions.hub import EventHub
from corral.store import sessions as repo
from corral.store.db import Database

log = logging.getLogger(__name__)

#: Sessions per query: keeps each statement (and its array parameter) small.
CHUNK = 1000
#: A session the store shows ahead of its tail is re-checked this much later: on a busy
#: replica the query often sees a commit whose events the pump is about to publish, and
#: treating those as missed sent a burst of stream readers to the store on every sweep.
GRACE = 0.5


class Backstop:
    def __init__(
        self, db: Database, hub: EventHub, *, interval: float, poll: float, grace: float = GRACE
    ) -> None:
        self._db = db
        self._grace = grace
        self._hub = hub
        self._interval = interval  # while notifications are complete
        self._poll = poll  # while they are not
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="stream-backstop")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._poll if not self._hub.complete() else self._interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("stream backstop check failed; retrying")

    async def sweep(self) -> int:
        """Wake the readers of every followed session whose log grew behind its tail's back;
        returns how many sessions that was."""
        followed = self._hub.followed()
        ids = list(followed)
        behind: dict[str, int] = {}
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            async with self._db.read() as conn:
                lasts = await repo.last_seqs(conn, chunk)
            for session_id in chunk:
                last, known = lasts.get(session_id), followed[session_id]
                if last is not None and (known is None or last > known):
                    behind[session_id] = last
        if not behind:
            return 0
        await asyncio.sleep(self._grace)
        # Only what is still missing: the tails the pumps have published to meanwhile are fine.
        return sum(1 for sid, last in behind.items() if self._hub.remote(sid, last))

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
