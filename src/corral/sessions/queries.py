"""Session reads: one session, the fleet query, the event log, approvals, and the live stream."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace

from corral.domain.errors import NotFound
from corral.domain.events import Event
from corral.domain.records import Approval, Page, Session
from corral.identity.authz import Action, Principal, authorize, visible_team
from corral.sessions.hub import EventHub
from corral.store import approvals as approval_repo
from corral.store import events as event_repo
from corral.store import sessions as repo
from corral.store.db import Database
from corral.store.pagination import clamp_limit
from corral.store.sessions import SessionFilter

_READ_BATCH = 500


class SessionQueries:
    def __init__(self, db: Database, hub: EventHub) -> None:
        self._db = db
        self._hub = hub

    async def get(
        self, who: Principal, session_id: str, action: Action = Action.SESSIONS_READ
    ) -> Session:
        async with self._db.read() as conn:
            session = await repo.get_session(conn, session_id)
        if session is None or session.org_id != who.org_id:
            raise NotFound(f"session {session_id} not found")
        authorize(who, action, team_id=session.team_id)
        return session

    async def list_sessions(
        self, who: Principal, where: SessionFilter, cursor: str | None, limit: int | None
    ) -> Page[Session]:
        authorize(who, Action.SESSIONS_READ)
        scope = visible_team(who)
        if scope is not None:
            if where.team_id is not None and where.team_id != scope:
                return Page([], None)
            where = replace(where, team_id=scope)
        async with self._db.read() as conn:
            return await repo.list_sessions(conn, where, cursor=cursor, limit=clamp_limit(limit))

    async def events(
        self, who: Principal, session_id: str, after: int, limit: int | None
    ) -> list[Event]:
        await self.get(who, session_id)
        async with self._db.read() as conn:
            return await event_repo.after(conn, session_id, after, clamp_limit(limit, default=200))

    async def approvals(
        self, who: Principal, session_id: str, status: str | None
    ) -> list[Approval]:
        await self.get(who, session_id)
        async with self._db.read() as conn:
            return await approval_repo.list_for_session(
                conn, session_id, statuses=(status,) if status else ()
            )

    def drain(self) -> None:
        self._hub.drain()

    async def _batch(self, session_id: str, after: int) -> list[Event]:
        async with self._db.read() as conn:
            return await event_repo.after(conn, session_id, after, _READ_BATCH)

    async def _read(self, session_id: str, after: int, log_end: int) -> list[Event]:
        """Events after ``after`` from the store, refreshing the hub's tail when the read
        reached the end of the log (``log_end``: the session's last seq when the stream began,
        so a cursor past it proves nothing)."""
        generation = self._hub.generation(session_id)
        # A client hanging up cancels this generator; shielding the read lets the pooled
        # connection be returned cleanly instead of being torn down mid-query.
        batch = await asyncio.shield(self._batch(session_id, after))
        if len(batch) < _READ_BATCH and (batch or after <= log_end):
            self._hub.absorb(session_id, batch, after, generation)
        return batch

    async def stream(
        self, who: Principal, session_id: str, after: int, *, heartbeat: float
    ) -> AsyncIterator[list[Event] | None]:
        """Events after ``after`` as they are committed; ``None`` means "send a heartbeat".

        New events come from the hub's in-memory tail when it has them, else from the store.
        A reader sleeps until the hub wakes it (a commit here, a notification from elsewhere,
        or the :mod:`~corral.sessions.backstop` finding the log ahead of the tail). Ends (after
        what is already stored) when the process starts draining for shutdown.
        """
        session = await self.get(who, session_id)
        cursor, last_sent = after, time.monotonic()
        waiter = self._hub.listen(session_id)
        try:
            while True:
                waiter.clear()
                batch = self._hub.cached_after(session_id, cursor)
                if batch is None:
                    batch = await self._read(session_id, cursor, session.last_seq)
                if batch:
                    cursor, last_sent = batch[-1].seq, time.monotonic()
                    yield batch
                    continue
                if self._hub.draining:
                    return
                wait = last_sent + heartbeat - time.monotonic()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await waiter.wait()
                now = time.monotonic()
                if now - last_sent >= heartbeat:
                    last_sent = now
                    yield None
        finally:
            self._hub.unlisten(session_id, waiter)
