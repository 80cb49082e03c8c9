"""The subscription shape most adapters share: one connection serves many sessions, and each
session's subscriber reads its own queue."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable

from corral.runtimes.base import NativeEvent


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
