"""One session-level subscription over A2A's per-task streams.

A2A streams belong to one request (``message/stream``) or one task (``tasks/resubscribe``), but
Corral subscribes once per session, before it sends. So each session (an A2A ``contextId``) has
a fan-out of subscriber queues, and every stream the adapter opens for that context (a turn, an
``input-required`` answer, a re-attach) feeds them. When a stream drops before its task reached
a terminal or interrupted state, the task is re-attached with ``tasks/resubscribe`` /
``SubscribeToTask`` (with backoff; on 0.3 by polling ``tasks/get`` instead) and subscribers
get ``STREAM_RESUMED``, so the pump reconciles from ``tasks/get`` for whatever went by.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from corral.domain.errors import RuntimeFailure, RuntimeUnreachable
from corral.runtimes.a2a.client import V10, A2AClient, A2AError
from corral.runtimes.a2a.mapping import (
    ARTIFACT,
    INTERRUPTED,
    MESSAGE,
    RESUMED,
    STATUS,
    TASK,
    TERMINAL,
    classify,
    state_of,
)
from corral.runtimes.a2a.mapping import task_id_of as _task_id_of
from corral.runtimes.backoff import Backoff
from corral.runtimes.base import STREAM_RESUMED, NativeEvent
from corral.runtimes.subscription import QueueSubscription

log = logging.getLogger(__name__)

_MAX_REATTACH = 12  # failed re-attach attempts before leaving the rest to the pump's reconcile
_POLL_S = 0.5
_ACCEPT_WAIT = 30.0  # seconds for an agent to start streaming a turn


class Subscription(QueueSubscription):
    def __init__(self, streams: SessionStreams, context_id: str) -> None:
        super().__init__(streams.unsubscribe)  # type: ignore[arg-type]
        self.context_id = context_id


@dataclass
class _Context:
    subs: set[Subscription] = field(default_factory=set)
    task_id: str | None = None  # the task of the latest turn
    state: str = ""  # its last known state
    resumed: set[str] = field(default_factory=set)  # tasks whose stream was re-attached
    readers: set[asyncio.Task[None]] = field(default_factory=set)


class SessionStreams:
    def __init__(self, client: A2AClient, *, resubscribe: bool | None = None) -> None:
        self._client = client
        self._resubscribe = resubscribe
        self._contexts: dict[str, _Context] = {}

    @property
    def resubscribe(self) -> bool:
        """Re-attach with ``tasks/resubscribe``/``SubscribeToTask`` (default on 1.0) or by
        polling ``tasks/get`` (default on 0.3, see :meth:`_poll`)."""
        if self._resubscribe is not None:
            return self._resubscribe
        return self._client.protocol == V10

    def context(self, context_id: str) -> _Context:
        return self._contexts.setdefault(context_id, _Context())

    def subscribe(self, context_id: str) -> Subscription:
        sub = Subscription(self, context_id)
        self.context(context_id).subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        ctx = self.context(sub.context_id)
        ctx.subs.discard(sub)
        if not ctx.subs and not ctx.readers and ctx.state in TERMINAL:
            # Nothing runs and nobody listens: forget it (a later turn starts afresh).
            del self._contexts[sub.context_id]

    def _deliver(self, context_id: str, event: NativeEvent) -> None:
        for sub in self.context(context_id).subs:
            sub.queue.put_nowait(event)

    async def _observe_live(self, context_id: str, result: Any) -> None:
        """A stream item; for a re-attached task, its end is preceded by the whole task."""
        item = classify(result)
        if item is None:
            return
        kind, obj = item
        task_id = _task_id_of(kind, obj)
        if task_id in self.context(context_id).resumed:
            if kind == ARTIFACT:
                obj = {**obj, RESUMED: True}
            elif kind == STATUS and state_of(obj.get("status")) in TERMINAL | INTERRUPTED:
                # Chunks may have gone by while the stream was down: take the artifacts from
                # the server's own record, so the finished text is whole.
                with contextlib.suppress(RuntimeFailure):
                    self.observe(context_id, await self._client.call("get", {"id": task_id}))
        self._emit(context_id, kind, obj)

    def observe(self, context_id: str, result: Any) -> None:
        """A JSON-RPC result (stream item, task) for the context's subscribers."""
        item = classify(result)
        if item is not None:
            self._emit(context_id, *item)

    def _emit(self, context_id: str, kind: str, obj: dict[str, Any]) -> None:
        ctx = self.context(context_id)
        task_id = _task_id_of(kind, obj)
        # Only the latest turn's task moves the context's state (send() clears it first).
        if task_id is not None and kind in (TASK, STATUS) and ctx.task_id in (None, task_id):
            ctx.task_id = task_id
            ctx.state = state_of(obj.get("status")) or ctx.state
        elif kind == MESSAGE:
            ctx.state = "completed"  # a direct reply: nothing left running
        self._deliver(context_id, NativeEvent(context_id, kind, obj))

    async def start(self, context_id: str, operation: str, params: dict[str, Any]) -> None:
        """Open a stream and return once the agent accepted it (its first item arrived);
        the rest is read in the background. Errors before acceptance are raised here."""
        accepted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        reader = asyncio.create_task(self._read(context_id, operation, params, accepted))
        ctx = self.context(context_id)
        ctx.readers.add(reader)
        reader.add_done_callback(ctx.readers.discard)
        try:
            await asyncio.wait_for(asyncio.shield(accepted), _ACCEPT_WAIT)
        except TimeoutError:
            reader.cancel()
            raise RuntimeUnreachable("A2A agent did not start streaming the turn") from None

    async def _read(
        self,
        context_id: str,
        operation: str,
        params: dict[str, Any],
        accepted: asyncio.Future[None] | None,
    ) -> None:
        ctx = self.context(context_id)
        try:
            async for result in self._client.stream(operation, params):
                await self._observe_live(context_id, result)
                if accepted is not None and not accepted.done():
                    accepted.set_result(None)
        except Exception as exc:
            if accepted is not None and not accepted.done():
                accepted.set_exception(exc)  # the caller of start() hears why
                return
            detail = exc.detail if isinstance(exc, RuntimeFailure) else repr(exc)
            log.warning("A2A stream for context %s broke: %s", context_id, detail)
        except asyncio.CancelledError:
            if accepted is not None and not accepted.done():
                accepted.cancel()
            raise
        if accepted is not None and not accepted.done():
            accepted.set_result(None)  # an empty stream: accepted, with nothing to follow
            return
        if ctx.task_id is not None and ctx.state not in TERMINAL | INTERRUPTED:
            await self._reattach(context_id, ctx.task_id)

    async def _reattach(self, context_id: str, task_id: str) -> None:
        """The stream ended early: follow the task again, and tell subscribers to reconcile."""
        if not self.resubscribe:
            await self._poll(context_id, task_id)
            return
        ctx = self.context(context_id)
        backoff = Backoff()
        for _ in range(_MAX_REATTACH):
            await asyncio.sleep(backoff.next_delay())
            if ctx.task_id != task_id:
                return  # a newer turn took over the context
            resumed = False
            ctx.resumed.add(task_id)
            try:
                async for result in self._client.stream("resubscribe", {"id": task_id}):
                    if not resumed:
                        resumed = True
                        backoff.reset()
                        self._deliver(context_id, NativeEvent(context_id, STREAM_RESUMED, {}))
                    await self._observe_live(context_id, result)
            except A2AError as exc:
                # Terminal or unknown task, or no resubscribe: the history has the rest.
                log.info("A2A resubscribe to %s refused: %s", task_id, exc.detail)
                break
            except RuntimeFailure as exc:
                log.warning("A2A resubscribe to %s failed: %s", task_id, exc.detail)
            if ctx.state in TERMINAL | INTERRUPTED:
                if not resumed:
                    break
                return
        self._deliver(context_id, NativeEvent(context_id, STREAM_RESUMED, {}))

    async def _poll(self, context_id: str, task_id: str) -> None:
        """Follow a task through ``tasks/get`` snapshots until it settles: for servers whose
        resubscribe cannot be trusted (a2a-sdk 0.3.26 then stores every later chunk twice)."""
        ctx = self.context(context_id)
        backoff = Backoff(initial=_POLL_S, maximum=5.0, factor=1.5)
        told, failures = False, 0
        while ctx.task_id == task_id and failures < _MAX_REATTACH:
            await asyncio.sleep(backoff.next_delay())
            try:
                result = await self._client.call("get", {"id": task_id})
            except A2AError as exc:
                log.info("A2A task %s cannot be followed: %s", task_id, exc.detail)
                break
            except RuntimeFailure as exc:
                failures += 1
                log.warning("A2A task %s poll failed: %s", task_id, exc.detail)
                continue
            failures = 0
            if not told:
                told = True
                self._deliver(context_id, NativeEvent(context_id, STREAM_RESUMED, {}))
            self.observe(context_id, result)
            if ctx.state in TERMINAL | INTERRUPTED:
                return
        if not told:
            self._deliver(context_id, NativeEvent(context_id, STREAM_RESUMED, {}))

    def follow(self, context_id: str, task_id: str) -> None:
        """Re-attach to a running task found after a restart (nobody waits for acceptance)."""
        ctx = self.context(context_id)
        ctx.task_id = task_id
        ctx.resumed.add(task_id)
        reader = asyncio.create_task(self._reattach_now(context_id, task_id))
        ctx.readers.add(reader)
        reader.add_done_callback(ctx.readers.discard)

    async def _reattach_now(self, context_id: str, task_id: str) -> None:
        with contextlib.suppress(RuntimeFailure):
            await self._read(context_id, "resubscribe", {"id": task_id}, None)

    async def aclose(self) -> None:
        readers = [r for ctx in self._contexts.values() for r in ctx.readers]
        for reader in readers:
            reader.cancel()
        for reader in readers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
