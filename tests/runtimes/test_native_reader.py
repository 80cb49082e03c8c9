"""How a pump reads its subscription: queued events together, a timeout as None, any order kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from corral.runtimes.base import NativeEvent
from corral.runtimes.subscription import READ_AT_MOST, NativeReader, QueueSubscription


def _event(n: int) -> NativeEvent:
    return NativeEvent("s1", "delta", {"n": n})


async def test_a_queue_backlog_comes_in_one_read_in_order() -> None:
    sub = QueueSubscription(lambda _: None)
    for n in range(5):
        sub.queue.put_nowait(_event(n))
    reader = NativeReader(sub)
    batch = await reader.read(1.0)
    assert batch is not None
    assert [e.payload["n"] for e in batch] == [0, 1, 2, 3, 4]
    assert sub.queue.empty()


async def test_a_read_is_bounded_and_the_rest_follows() -> None:
    sub = QueueSubscription(lambda _: None)
    for n in range(READ_AT_MOST + 3):
        sub.queue.put_nowait(_event(n))
    reader = NativeReader(sub)
    first, second = await reader.read(1.0), await reader.read(1.0)
    assert first is not None and second is not None
    assert len(first) == READ_AT_MOST
    assert [e.payload["n"] for e in second] == [READ_AT_MOST, READ_AT_MOST + 1, READ_AT_MOST + 2]


async def test_a_quiet_queue_times_out_and_loses_nothing_put_later() -> None:
    sub = QueueSubscription(lambda _: None)
    reader = NativeReader(sub)
    assert await reader.read(0.02) is None
    asyncio.get_running_loop().call_later(0.02, sub.queue.put_nowait, _event(7))
    batch = await reader.read(1.0)
    assert batch is not None and [e.payload["n"] for e in batch] == [7]


class _Generator:
    """A subscription that is not queue-backed: an async iterator closed if a read is cancelled."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[NativeEvent] = asyncio.Queue()
        self.closed = False

    async def _events(self) -> AsyncIterator[NativeEvent]:
        try:
            while True:
                yield await self.queue.get()
        finally:
            self.closed = True

    def __aiter__(self) -> AsyncIterator[NativeEvent]:
        return self._events()

    async def aclose(self) -> None:
        pass


async def test_any_iterator_survives_timeouts_with_one_pending_read() -> None:
    sub = _Generator()
    reader = NativeReader(sub)
    assert await reader.read(0.02) is None
    assert await reader.read(0.02) is None
    assert not sub.closed  # the pending read was kept, not cancelled
    sub.queue.put_nowait(_event(1))
    sub.queue.put_nowait(_event(2))
    assert [e.payload["n"] for e in await reader.read(1.0) or []] == [1]
    assert [e.payload["n"] for e in await reader.read(1.0) or []] == [2]
    reader.close()
