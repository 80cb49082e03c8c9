"""One live subscription per Corral session on ``GET /v1/sessions/{id}/events/stream``.

The service's stream is per session and has no replay. A background task reads it into a
queue and, when it drops (network cut, ``event: error``, end of body), reconnects with backoff
and queues a ``STREAM_RESUMED`` marker, so the pump backfills from the event list: native event
ids (``sevt_…``) are the same there, which makes the backfill exactly-once after dedupe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from corral.domain.errors import RuntimeFailure, RuntimeUnreachable
from corral.runtimes.backoff import Backoff
from corral.runtimes.base import STREAM_RESUMED, NativeEvent
from corral.runtimes.claude_agents.client import ClaudeAgentsClient, StreamError

log = logging.getLogger(__name__)

_CONNECT_WAIT = 10.0


class SessionStream:
    def __init__(self, client: ClaudeAgentsClient, native_session_id: str, *, deltas: bool) -> None:
        self._client = client
        self.native_session_id = native_session_id
        self._deltas = deltas
        self.queue: asyncio.Queue[NativeEvent] = asyncio.Queue()
        self._connected = asyncio.Event()
        self._failure: RuntimeFailure | None = None
        self._task: asyncio.Task[None] | None = None
        #: Called once closed (the adapter stops tracking it).
        self.on_close: Callable[[SessionStream], None] | None = None

    async def start(self) -> None:
        """Return once the first connection is live, so nothing sent afterwards is missed."""
        self._task = asyncio.create_task(
            self._run(), name=f"claude-stream-{self.native_session_id}"
        )
        waiter = asyncio.ensure_future(self._connected.wait())
        done, _ = await asyncio.wait(
            {waiter, self._task}, timeout=_CONNECT_WAIT, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in done:
            waiter.cancel()
            await self.aclose()
            if self._failure is not None:
                raise self._failure
            raise RuntimeUnreachable("Claude Managed Agents event stream did not connect")

    async def __aiter__(self) -> AsyncIterator[NativeEvent]:
        while True:
            yield await self.queue.get()

    async def _run(self) -> None:
        backoff = Backoff()
        sid = self.native_session_id
        while True:
            try:
                async for event in self._client.stream(sid, self._deltas):
                    if event is None:  # connected
                        if self._connected.is_set():
                            self.queue.put_nowait(NativeEvent(sid, STREAM_RESUMED, {}))
                        self._connected.set()
                        backoff.reset()
                        continue
                    kind = event.get("type")
                    if isinstance(kind, str):
                        self.queue.put_nowait(NativeEvent(sid, kind, event))
                log.warning("Claude stream of %s ended; reconnecting", sid)
            except StreamError as exc:
                log.warning("Claude stream of %s sent an error frame (%s); reconnecting", sid, exc)
            except RuntimeFailure as exc:
                if not self._connected.is_set():
                    # The first connection fails fast, so ``subscribe`` reports a runtime that
                    # is down or refuses us; only an established stream is worth retrying.
                    self._failure = exc
                    return
                log.warning("Claude stream of %s failed: %s; reconnecting", sid, exc.detail)
            await asyncio.sleep(backoff.next_delay())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.on_close is not None:
            self.on_close(self)
