"""One session-level subscription over Hermes' per-run, single-consumer event streams.

Hermes streams each run's events once (``GET /v1/runs/{id}/events``), buffers them from the
moment the run is accepted, and answers 404 to a second reader. Corral wants one subscription per
session, so the adapter follows each run it starts in a task and fans its events out to the
session's subscribers. When a run's stream breaks before its terminal event, reading it again is
not safe (seen on 0.19.0: a second reader right after the break gets a 200 and then nothing, as
it shares the dead reader's buffer, which Hermes stops filling), so the follower switches to
polling ``GET /v1/runs/{id}``: subscribers get ``STREAM_RESUMED`` (the pump reconciles, and
``history()`` reports the gap), then the run's outcome as synthetic events built from the status
object, under the same native ids the live events would have had.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from corral.domain.errors import RuntimeFailure
from corral.runtimes.backoff import Backoff
from corral.runtimes.base import STREAM_RESUMED, NativeEvent
from corral.runtimes.hermes.client import HermesClient, RunStreamGone
from corral.runtimes.subscription import QueueSubscription

log = logging.getLogger(__name__)

TERMINAL_EVENTS = frozenset({"run.completed", "run.failed", "run.cancelled"})
TERMINAL_STATUSES = {
    "completed": "run.completed",
    "failed": "run.failed",
    "cancelled": "run.cancelled",
    "interrupted": "run.failed",  # newer builds, for runs a gateway restart cut short
}
BUSY_STATUSES = frozenset({"queued", "running", "stopping"})


def events_from_status(status: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The native events a run status object stands for: its outcome, or a waiting approval.

    0.19.0's status carries no approval details, so a waiting approval is re-reported as a
    ``synthetic`` ``approval.request`` (the mapper folds it into one it already saw).
    """
    run_id = status.get("run_id")
    state = status.get("status")
    base: dict[str, Any] = {"run_id": run_id}
    if state == "completed":
        return [
            (
                "run.completed",
                {**base, "output": status.get("output"), "usage": status.get("usage")},
            )
        ]
    if state == "failed":
        return [("run.failed", {**base, "error": status.get("error")})]
    if state == "interrupted":
        error = status.get("error") or "Hermes restarted while the run was going"
        return [("run.failed", {**base, "error": error})]
    if state == "cancelled":
        return [("run.cancelled", base)]
    if state == "waiting_for_approval":
        found = status.get("approval")  # newer builds describe the waiting approval
        approval: dict[str, Any] = found if isinstance(found, dict) else {}
        payload = {**approval, **base, "synthetic": True}
        payload.setdefault("description", "approval requested while Corral was not listening")
        return [("approval.request", payload)]
    return []


class Subscription(QueueSubscription):
    def __init__(self, hub: RunHub, native_session_id: str) -> None:
        super().__init__(hub.unsubscribe)  # type: ignore[arg-type]
        self.native_session_id = native_session_id


@dataclass
class RunWatch:
    """What this process knows about a session's latest run."""

    run_id: str
    gapped: bool = False  # its live stream broke: events were lost
    done: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class RunHub:
    def __init__(self, client: HermesClient, *, poll_max: float = 2.0) -> None:
        self._client = client
        self._subs: dict[str, set[Subscription]] = {}
        self.runs: dict[str, RunWatch] = {}  # native session id -> latest run
        self._poll_max = poll_max

    def subscribe(self, native_session_id: str) -> Subscription:
        sub = Subscription(self, native_session_id)
        self._subs.setdefault(native_session_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.native_session_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.native_session_id]

    def _emit(self, native_session_id: str, kind: str, payload: dict[str, Any]) -> None:
        for sub in self._subs.get(native_session_id, ()):
            sub.queue.put_nowait(NativeEvent(native_session_id, kind, payload))

    def follow(self, native_session_id: str, run_id: str) -> RunWatch:
        watch = RunWatch(run_id)
        self.runs[native_session_id] = watch
        watch.task = asyncio.create_task(
            self._follow(native_session_id, watch), name=f"hermes-run-{run_id}"
        )
        return watch

    async def _follow(self, nsid: str, watch: RunWatch) -> None:
        try:
            async for event in self._client.run_events(watch.run_id):
                kind = event.get("event")
                if not isinstance(kind, str):
                    continue
                self._emit(nsid, kind, event)
                if kind in TERMINAL_EVENTS:
                    watch.done = True
                    return
            reason = "Hermes run stream ended before the run did"
        except RunStreamGone:
            reason = "Hermes no longer serves this run's stream (404)"
        except RuntimeFailure as exc:
            reason = f"Hermes run stream failed: {exc.detail}"
        except Exception as exc:  # never leave a run unwatched: its outcome is still pollable
            log.exception("run %s: reading its stream failed", watch.run_id)
            reason = f"Hermes run stream failed: {type(exc).__name__}"
        log.warning("run %s: %s; polling its status instead", watch.run_id, reason)
        watch.gapped = True
        self._emit(nsid, STREAM_RESUMED, {"run_id": watch.run_id, "reason": reason})
        await self._poll(nsid, watch)

    async def _poll(self, nsid: str, watch: RunWatch) -> None:
        backoff = Backoff(initial=0.2, maximum=self._poll_max)
        reported_waiting = False
        while True:
            try:
                status = await self._client.run(watch.run_id)
            except RuntimeFailure as exc:
                log.info("run %s: status check failed: %s", watch.run_id, exc.detail)
                await asyncio.sleep(backoff.next_delay())
                continue
            if status is None:  # Hermes forgot the run: the pump reconciles from history
                watch.done = True
                self._emit(nsid, STREAM_RESUMED, {"run_id": watch.run_id})
                return
            state = status.get("status")
            if state == "waiting_for_approval" and not reported_waiting:
                reported_waiting = True
                for kind, payload in events_from_status(status):
                    self._emit(nsid, kind, payload)
            elif state != "waiting_for_approval":
                reported_waiting = False
            if state in TERMINAL_STATUSES:
                for kind, payload in events_from_status(status):
                    self._emit(nsid, kind, payload)
                watch.done = True
                return
            await asyncio.sleep(backoff.next_delay())

    async def aclose(self) -> None:
        tasks = [w.task for w in self.runs.values() if w.task is not None and not w.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
