"""The subscription shape most adapters share: one connection serves many sessions, and each
session's subscriber reads its own queue."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable

from corral.runtimes.base import EventSubscription, NativeEvent


class QueueSubscription:
    """Native events of one session, put by the shared connection, read in order by its pump.

    ``release`` is called (and awaited if it returns an awaitable) when the pump closes it, so
    the connection stops routing to it.
    """

    def __init__(self, release: Callable[[QueueSubscription], Awaitable[None] | None]) -> None:
        self.queue: asyncio.Queue[NativeEvent] = asyncio.Queue()
        self._release = release

    async def __aiter__(self) -> AsyncIterator[NativeEvent]:
        while True:
            yield await self.queue.get()

    async def aclose(self) -> None:
        released = self._release(self)
        if inspect.isawaitable(released):
            await released


#: Native events one read hands a pump at most (a longer backlog takes several reads).
READ_AT_MOST = 256


class NativeReader:
    """Reads a subscription for its pump: everything already queued at once, or, when nothing
    is, the next event within a timeout.

    A queue-backed subscription is read directly: no task per event, and a backlog comes in
    one read. Any other subscription is read through one pending ``anext`` that survives
    timeouts (cancelling it would close the subscription).
    """

    def __init__(self, subscription: EventSubscription) -> None:
        self._queue = subscription.queue if isinstance(subscription, QueueSubscription) else None
        self._events = aiter(subscription)
        self._pending: asyncio.Future[NativeEvent] | None = None

    async def read(self, wait: float) -> list[NativeEvent] | None:
        """The next events in order, or None if none came within ``wait`` seconds."""
        queue = self._queue
        if queue is None:
            return await self._read_iterator(wait)
        if queue.empty():
            try:
                async with asyncio.timeout(wait):
                    first = await queue.get()  # cancelling a get loses no item
            except TimeoutError:
                return None
        else:
            first = queue.get_nowait()
        batch = [first]
        while len(batch) < READ_AT_MOST and not queue.empty():
            batch.append(queue.get_nowait())
        return batch

    async def _read_iterator(self, wait: float) -> list[NativeEvent] | None:
        if self._pending is None:
            self._pending = asyncio.ensure_future(anext(self._events))
        done, _ = await asyncio.wait({self._pending}, timeout=wait)
        if not done:
            return None
        pending, self._pending = self._pending, None
        return [pending.result()]

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
