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
            return await event_repo.after(conn, session_id, after, 500)

    async def stream(
        self, who: Principal, session_id: str, after: int, *, heartbeat: float, poll: float = 1.0
    ) -> AsyncIterator[list[Event] | None]:
        """Events after ``after`` as they are committed; ``None`` means "send a heartbeat".

        Ends (after what is already stored) when the process starts draining for shutdown.
        """
        await self.get(who, session_id)
        cursor, last_sent = after, time.monotonic()
        waiter = self._hub.listen(session_id)
        try:
            while True:
                waiter.clear()
                # A client hanging up cancels this generator; shielding the read lets the pooled
                # connection be returned cleanly instead of being torn down mid-query.
                batch = await asyncio.shield(self._batch(session_id, cursor))
                if batch:
                    cursor, last_sent = batch[-1].seq, time.monotonic()
                    yield batch
                    continue
                if self._hub.draining:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.wait(), poll)
                if time.monotonic() - last_sent >= heartbeat:
                    last_sent = time.monotonic()
                    yield None
        finally:
            self._hub.unlisten(session_id, waiter)
