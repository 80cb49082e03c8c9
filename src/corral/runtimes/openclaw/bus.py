"""One long-lived gateway connection per OpenClaw runtime, fanned out by session key.

The gateway broadcasts ``chat``/``agent``/approval events for every session to each operator
connection, and sends ``session.message`` for the sessions a connection subscribed to
(``sessions.messages.subscribe``). So each adapter keeps ONE connection: it routes events to
the subscribers of their session key, re-subscribes every key after a reconnect (with backoff)
and then hands each subscriber a ``STREAM_RESUMED`` marker, since events may have been missed.

The open connection is also what makes Corral an approval route: the gateway only waits for
an exec approval while some approver connection is present.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from corral.domain.errors import RuntimeFailure, RuntimeUnreachable
from corral.runtimes.backoff import Backoff
from corral.runtimes.base import STREAM_RESUMED, NativeEvent
from corral.runtimes.openclaw.client import GatewayConnection
from corral.runtimes.openclaw.mapping import session_of
from corral.runtimes.subscription import QueueSubscription

log = logging.getLogger(__name__)

_CONNECT_WAIT = 15.0


class Subscription(QueueSubscription):
    def __init__(self, bus: GatewayBus, key: str) -> None:
        super().__init__(bus.unsubscribe)  # type: ignore[arg-type]
        self.native_session_id = key


class GatewayBus:
    def __init__(self, base_url: str, token: str | None) -> None:
        self._base_url = base_url
        self._token = token
        self._conn: GatewayConnection | None = None
        self._subs: dict[str, set[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        self._attempted = asyncio.Event()  # set after every connect attempt, good or bad
        self._last_error: RuntimeFailure | None = None
        self._ever_connected = False

    # -- connection -----------------------------------------------------------------------

    async def connection(self) -> GatewayConnection:
        """The live connection, connecting first if needed; a failed attempt raises at once."""
        conn = self._conn
        if conn is not None and not conn.closed.is_set():
            return conn
        if self._task is None or self._task.done():
            self._attempted.clear()
            self._task = asyncio.create_task(self._run(), name="openclaw-gateway-bus")
        try:
            await asyncio.wait_for(self._attempted.wait(), _CONNECT_WAIT)
        except TimeoutError:
            raise RuntimeUnreachable("OpenClaw gateway did not answer the handshake") from None
        conn = self._conn
        if conn is not None and not conn.closed.is_set():
            return conn
        raise self._last_error or RuntimeUnreachable("OpenClaw gateway is unreachable")

    async def request(self, method: str, params: dict[str, Any], **kw: Any) -> Any:
        conn = await self.connection()
        return await conn.request(method, params, **kw)

    async def _run(self) -> None:
        backoff = Backoff()
        while True:
            conn = GatewayConnection(self._base_url, self._token, self._dispatch)
            try:
                await conn.open()
            except RuntimeFailure as exc:
                self._last_error = exc
                self._attempted.set()
                if exc.extra.get("http_status") == 401:
                    return  # a wrong token does not get better by retrying
                log.warning("OpenClaw gateway connect failed: %s; retrying", exc.detail)
                await asyncio.sleep(backoff.next_delay())
                self._attempted.clear()
                continue
            backoff.reset()
            self._conn, self._last_error = conn, None
            resumed = self._ever_connected
            self._ever_connected = True
            await self._resubscribe(conn, resumed)
            self._attempted.set()
            await conn.closed.wait()
            log.warning("OpenClaw gateway connection lost; reconnecting")
            self._conn = None
            self._attempted.clear()
            await asyncio.sleep(backoff.next_delay())

    async def _resubscribe(self, conn: GatewayConnection, resumed: bool) -> None:
        for key in list(self._subs):
            with contextlib.suppress(RuntimeFailure):
                await conn.request("sessions.messages.subscribe", {"key": key})
        if resumed:
            for key, subs in self._subs.items():
                for sub in subs:
                    sub.queue.put_nowait(NativeEvent(key, STREAM_RESUMED, {}))

    # -- fan-out --------------------------------------------------------------------------

    def _dispatch(self, name: str, frame: dict[str, Any]) -> None:
        payload = frame.get("payload")
        if not isinstance(payload, dict):
            return
        key = session_of(name, payload)
        if key is None:
            return
        for sub in self._subs.get(key, ()):
            sub.queue.put_nowait(NativeEvent(key, name, payload))

    async def subscribe(self, key: str) -> Subscription:
        conn = await self.connection()
        sub = Subscription(self, key)
        first = key not in self._subs
        self._subs.setdefault(key, set()).add(sub)
        if first:
            try:
                await conn.request("sessions.messages.subscribe", {"key": key})
            except BaseException:
                await self.unsubscribe(sub)
                raise
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.native_session_id)
        if subs is None:
            return
        subs.discard(sub)
        if subs:
            return
        del self._subs[sub.native_session_id]
        conn = self._conn
        if conn is not None and not conn.closed.is_set():
            with contextlib.suppress(RuntimeFailure):
                await conn.request(
                    "sessions.messages.unsubscribe", {"key": sub.native_session_id}, wait=5.0
                )

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
