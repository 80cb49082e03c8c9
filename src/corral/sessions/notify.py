"""Cross-replica stream wake-ups over PostgreSQL LISTEN/NOTIFY.

Every transaction that appends events notifies ``corral_events`` with the session id, its new
last seq and, when they fit, the events themselves (see :mod:`corral.store.event_notices`); each
replica listens on one dedicated connection and hands them to its local stream readers, so a
client streaming from replica A sees events that replica B pumped without waiting for the
polling backstop, and usually without a store read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from corral.sessions.hub import EventHub
from corral.store import event_notices
from corral.store.event_notices import EVENTS_CHANNEL

log = logging.getLogger(__name__)


def _dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresListener:
    def __init__(self, database_url: str, hub: EventHub, origin: str = "") -> None:
        self._dsn = _dsn(database_url)
        self._origin = origin
        self._hub = hub
        self._task: asyncio.Task[None] | None = None
        self._channels: dict[str, Callable[[str], None]] = {}
        self.connected = asyncio.Event()

    def listen(self, channel: str, on_payload: Callable[[str], None]) -> None:
        """Also deliver ``channel``'s payloads; called with "" after every (re)connect, since
        whatever was announced while the connection was down went unheard."""
        self._channels[channel] = on_payload

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pg-listener")

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        notice = event_notices.parse(payload)
        if self._origin and notice.origin == self._origin:
            return  # our own commit: the writer already handed it to our readers
        if not self._hub.follows(notice.session_id):
            return  # every replica hears every notice; decode only those streamed here
        self._hub.remote(notice.session_id, notice.last_seq, notice.events())

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                closed = asyncio.Event()
                conn.add_termination_listener(lambda _conn, done=closed: done.set())
                await conn.add_listener(EVENTS_CHANNEL, self._on_notify)
                for channel, callback in self._channels.items():
                    await conn.add_listener(
                        channel, lambda _c, _p, _ch, payload, cb=callback: cb(payload)
                    )
                    callback("")
                self.connected.set()
                # Whatever was committed while we were not listening went unannounced.
                self._hub.wake_all(invalidate=True)
                backoff = 0.5
                await closed.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("LISTEN connection failed: %s; retrying", exc)
            finally:
                self.connected.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
