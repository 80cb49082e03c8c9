"""One long-lived ``/event`` subscription per OpenCode server, fanned out by session.

OpenCode's bus is global to the server, so a subscription per Corral session would multiply
connections and parse every frame N times. Instead each adapter keeps one connection, routes each
frame to the subscribers of its session, and reconnects with backoff when the stream drops; after
a reconnect every subscriber gets a ``STREAM_RESUMED`` marker, since frames may have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from corral.domain.errors import RuntimeFailure, RuntimeUnreachable
from corral.runtimes.backoff import Backoff
from corral.runtimes.base import STREAM_RESUMED, NativeEvent
from corral.runtimes.opencode.client import OpenCodeClient
from corral.runtimes.opencode.mapping import session_of
from corral.runtimes.subscription import QueueSubscription

log = logging.getLogger(__name__)

_CONNECT_WAIT = 10.0


class Subscription(QueueSubscription):
    def __init__(self, bus: EventBus, native_session_id: str) -> None:
        super().__init__(bus.unsubscribe)  # type: ignore[arg-type]
        self.native_session_id = native_session_id


class EventBus:
    def __init__(self, client: OpenCodeClient) -> None:
        self._client = client
        self._subs: dict[str, set[Subscription]] = {}
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ever_connected = False

    async def subscribe(self, native_session_id: str) -> Subscription:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="opencode-event-bus")
        try:
            await asyncio.wait_for(self._connected.wait(), _CONNECT_WAIT)
        except TimeoutError:
            raise RuntimeUnreachable("OpenCode event stream did not connect") from None
        sub = Subscription(self, native_session_id)
        self._subs.setdefault(native_session_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.native_session_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.native_session_id]

    def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "server.connected":
            resumed = self._ever_connected
            self._ever_connected = True
            self._connected.set()
            if resumed:
                for nsid, subs in self._subs.items():
                    for sub in subs:
                        sub.queue.put_nowait(NativeEvent(nsid, STREAM_RESUMED, {}))
            return
        sid = session_of(frame)
        if sid is None or not isinstance(kind, str):
            return
        for sub in self._subs.get(sid, ()):
            sub.queue.put_nowait(NativeEvent(sid, kind, frame))

    async def _run(self) -> None:
        backoff = Backoff()
        while True:
            try:
                async for frame in self._client.events():
                    backoff.reset()
                    self._dispatch(frame)
                log.warning("OpenCode event stream ended; reconnecting")
            except RuntimeFailure as exc:
                log.warning("OpenCode event stream failed: %s; reconnecting", exc.detail)
            self._connected.clear()
            await asyncio.sleep(backoff.next_delay())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
