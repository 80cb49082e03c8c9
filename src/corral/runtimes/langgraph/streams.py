"""One session-level subscription over LangGraph's per-run streams.

LangGraph streams per run, but Corral wants one ordered feed per session (thread). Each run the
adapter starts (a turn, an approval's resume, an answer) gets a reader task that joins
``GET /threads/{tid}/runs/{rid}/stream`` with ``Last-Event-ID: -`` (runs are created with
``stream_resumable``, so the server replays from the run's first frame and nothing is lost between
creating the run and joining it), and forwards every frame to the thread's subscribers. When the
stream closes, the reader asks the server how the run ended and adds a ``corral.run_end`` event.

Reconnects: a dropped stream is rejoined with a ``Last-Event-ID`` one millisecond *before* the last
frame seen, and replayed frames already delivered are skipped by counting ids. The detour exists
because the in-memory server stamps every frame ``<ms>-0`` (the same id for frames of the same
millisecond) and replays only ids strictly greater than the one given, so resuming from the last id
itself would silently lose that millisecond's other frames. Subscribers get ``STREAM_RESUMED``
after a reconnect, so the pump also reconciles from thread state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from typing import Any

from corral.domain.errors import RuntimeFailure, RuntimeRejected
from corral.runtimes.backoff import Backoff
from corral.runtimes.base import STREAM_RESUMED, NativeEvent
from corral.runtimes.langgraph.client import LangGraphClient
from corral.runtimes.langgraph.mapping import RUN_END
from corral.runtimes.sse import SseFrame, json_object
from corral.runtimes.subscription import QueueSubscription

log = logging.getLogger(__name__)

KIND = "langgraph"
_ACTIVE = ("pending", "running")
_MAX_ATTEMPTS = 50  # reconnects per run before giving up (the pump then reconciles on silence)


def frame_data(frame: SseFrame) -> Any:
    """The frame's JSON (an object, or the ``[chunk, metadata]`` list of ``messages-tuple``);
    None, logged and counted by the shared SSE helper, when it is neither."""
    try:
        value = json.loads(frame.data)
    except ValueError:
        value = None
    if isinstance(value, dict | list):
        return value
    json_object(frame, KIND)  # logs and counts the malformed frame
    return None


def resume_marker(last_id: str) -> str:
    """A ``Last-Event-ID`` just before ``last_id``'s millisecond (see the module docstring)."""
    ms, _, _ = last_id.partition("-")
    return f"{int(ms) - 1}-0" if ms.isdigit() and int(ms) > 0 else "-"


class Subscription(QueueSubscription):
    def __init__(self, streams: RunStreams, thread_id: str) -> None:
        super().__init__(streams.unsubscribe)  # type: ignore[arg-type]
        self.thread_id = thread_id


class RunStreams:
    def __init__(self, client: LangGraphClient) -> None:
        self._client = client
        self._subs: dict[str, set[Subscription]] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}

    async def subscribe(self, thread_id: str) -> Subscription:
        sub = Subscription(self, thread_id)
        self._subs.setdefault(thread_id, set()).add(sub)
        # A run may already be going (Corral restarted mid-turn, or another replica started it).
        try:
            runs = await self._client.runs(thread_id, limit=5)
        except RuntimeFailure:
            self.unsubscribe(sub)
            raise
        for run in runs:
            if run.get("status") in _ACTIVE and isinstance(run.get("run_id"), str):
                self.follow(thread_id, run["run_id"])
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.thread_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.thread_id]

    def emit(self, thread_id: str, event_type: str, payload: dict[str, Any]) -> None:
        for sub in self._subs.get(thread_id, ()):
            sub.queue.put_nowait(NativeEvent(thread_id, event_type, payload))

    def follow(self, thread_id: str, run_id: str) -> None:
        """Start forwarding a run's frames (once per run, however often it is asked)."""
        task = self._readers.get(run_id)
        if task is None or task.done():
            self._readers[run_id] = asyncio.create_task(
                self._read(thread_id, run_id), name=f"langgraph-run-{run_id}"
            )

    async def _read(self, thread_id: str, run_id: str) -> None:
        try:
            await self._read_run(thread_id, run_id)
        finally:
            self._readers.pop(run_id, None)

    async def _read_run(self, thread_id: str, run_id: str) -> None:
        seen: Counter[str] = Counter()
        last_id: str | None = None
        backoff = Backoff()
        resumed = False
        for _ in range(_MAX_ATTEMPTS):
            to_skip = Counter(seen)
            try:
                async for frame in self._client.join(
                    thread_id, run_id, "-" if last_id is None else resume_marker(last_id)
                ):
                    if resumed:  # only once the new connection works
                        resumed = False
                        self.emit(thread_id, STREAM_RESUMED, {"run_id": run_id})
                    backoff.reset()
                    if frame.id is not None:
                        if to_skip[frame.id] > 0:
                            to_skip[frame.id] -= 1
                            continue
                        seen[frame.id] += 1
                        last_id = frame.id
                    data = frame_data(frame)
                    if data is not None:
                        payload = {"run_id": run_id, "data": data, "id": frame.id}
                        self.emit(thread_id, frame.event, payload)
                run = await self._client.run(thread_id, run_id)
                status = run.get("status")
                if status in _ACTIVE:
                    # Closed while the run goes on (a proxy or a restart): join again, the
                    # replay fills what was missed.
                    await asyncio.sleep(backoff.next_delay())
                    continue
                thread = await self._client.thread(thread_id)
                if resumed:
                    self.emit(thread_id, STREAM_RESUMED, {"run_id": run_id})
                end = {"run_id": run_id, "status": status, "thread_status": thread.get("status")}
                self.emit(thread_id, RUN_END, end)
                return
            except RuntimeRejected as exc:
                if exc.extra.get("http_status") == 404:
                    log.warning("LangGraph run %s vanished: %s", run_id, exc.detail)
                    self.emit(thread_id, STREAM_RESUMED, {"run_id": run_id})
                    return
                log.warning("LangGraph run %s stream failed: %s; rejoining", run_id, exc.detail)
                resumed = True
            except RuntimeFailure as exc:
                log.warning("LangGraph run %s stream dropped: %s; rejoining", run_id, exc.detail)
                resumed = True
            await asyncio.sleep(backoff.next_delay())
        log.error(
            "LangGraph run %s: giving up on its stream after %d attempts", run_id, _MAX_ATTEMPTS
        )
        self.emit(thread_id, STREAM_RESUMED, {"run_id": run_id})

    async def aclose(self) -> None:
        tasks = list(self._readers.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
