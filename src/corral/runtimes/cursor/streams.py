"""One session-level subscription over Cursor's per-run streams.

Cursor streams one run at a time (``GET …/runs/{runId}/stream``), but Corral wants one event
stream per session. A :class:`Subscription` therefore follows every run the adapter starts
(or finds running) for its agent, in order, through one queue. Each follower reconnects after
a drop with ``Last-Event-ID`` (the server then replays what was missed) and yields
``STREAM_RESUMED`` once the stream is back, so the pump also reconciles from ``history()``.
A 410 ``stream_expired`` or 404 ends the follower with ``STREAM_RESUMED`` too: history then
reports what it can (the run's result, and a gap).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from corral.domain.errors import RuntimeRejected, RuntimeUnreachable
from corral.runtimes.backoff import Backoff
from corral.runtimes.base import STREAM_RESUMED, NativeEvent
from corral.runtimes.cursor.client import CursorClient, cursor_code
from corral.runtimes.cursor.mapping import native
from corral.runtimes.sse import json_object

__all__ = ["RunStreams", "Subscription"]

log = logging.getLogger(__name__)

#: Frames that carry nothing for Corral and are not queued.
_SKIPPED = frozenset({"heartbeat"})


class Subscription:
    def __init__(self, streams: RunStreams, agent_id: str) -> None:
        self._streams = streams
        self.agent_id = agent_id
        self.queue: asyncio.Queue[NativeEvent] = asyncio.Queue()
        self._followers: dict[str, asyncio.Task[None]] = {}

    async def __aiter__(self) -> AsyncIterator[NativeEvent]:
        while True:
            yield await self.queue.get()

    def follow(self, run_id: str) -> None:
        if run_id not in self._followers:
            task = asyncio.create_task(self._follow(run_id), name=f"cursor-run-{run_id}")
            self._followers[run_id] = task

    async def _follow(self, run_id: str) -> None:
        last_id: str | None = None
        backoff = Backoff()
        resumed = False
        while True:
            ended = False
            stream = self._streams.client.stream(self.agent_id, run_id, last_id)
            try:
                async with contextlib.aclosing(stream) as frames:
                    async for frame in frames:
                        data = json_object(frame, "cursor")
                        if data is None:
                            continue
                        backoff.reset()
                        if resumed:  # the first frame after a reconnect: the stream is back
                            resumed = False
                            self.queue.put_nowait(NativeEvent(self.agent_id, STREAM_RESUMED, {}))
                        if frame.id:
                            last_id = frame.id
                            self._streams.last_ids[run_id] = frame.id
                        if frame.event in _SKIPPED:
                            continue
                        event = native(self.agent_id, frame.event, run_id, frame.id, data)
                        self.queue.put_nowait(event)
                        if frame.event == "done":
                            return
                        ended = ended or frame.event == "result"
                if ended:  # the result is terminal even when ``done`` was lost
                    return
                log.info("Cursor run %s stream ended early; resuming", run_id)
            except RuntimeRejected as exc:
                code, status = cursor_code(exc), exc.extra.get("http_status")
                if code == "invalid_last_event_id":
                    last_id = None  # replay from the start; native ids make repeats harmless
                elif status in (404, 410):
                    # Nothing more can be streamed: let the pump reconcile from history().
                    self.queue.put_nowait(NativeEvent(self.agent_id, STREAM_RESUMED, {}))
                    return
                else:
                    log.warning("Cursor run %s stream refused: %s", run_id, exc.detail)
            except RuntimeUnreachable as exc:
                log.info("Cursor run %s stream dropped: %s; resuming", run_id, exc.detail)
            resumed = True
            await asyncio.sleep(backoff.next_delay())

    async def aclose(self) -> None:
        self._streams.unsubscribe(self)
        tasks = list(self._followers.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class RunStreams:
    """The subscriptions of one adapter, by agent; ``attach`` makes them follow a new run."""

    def __init__(self, client: CursorClient) -> None:
        self.client = client
        self._subs: dict[str, set[Subscription]] = {}
        #: Newest SSE id seen per run: where a replay in ``history()`` can stop.
        self.last_ids: dict[str, str] = {}

    def subscribe(self, agent_id: str, active_run: str | None) -> Subscription:
        sub = Subscription(self, agent_id)
        self._subs.setdefault(agent_id, set()).add(sub)
        if active_run is not None:
            sub.follow(active_run)
        return sub

    def attach(self, agent_id: str, run_id: str) -> None:
        for sub in self._subs.get(agent_id, ()):
            sub.follow(run_id)

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.agent_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.agent_id]

    async def aclose(self) -> None:
        for subs in list(self._subs.values()):
            for sub in list(subs):
                await sub.aclose()
