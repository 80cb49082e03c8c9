"""RunStreams' rejoin logic against a scripted transport reproducing the in-memory server's ids:
``<ms>-0``, repeated within a millisecond, replayed only when strictly greater than
``Last-Event-ID``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from corral.domain.errors import RuntimeUnreachable
from corral.runtimes.base import STREAM_RESUMED, NativeEvent
from corral.runtimes.langgraph.mapping import RUN_END
from corral.runtimes.langgraph.streams import RunStreams
from corral.runtimes.sse import SseFrame

FRAMES = [
    SseFrame("metadata", '{"run_id": "r1", "attempt": 1}', "1000-0"),
    SseFrame("messages", '[{"type": "AIMessageChunk", "id": "m", "content": "a"}, {}]', "1001-0"),
    SseFrame("messages", '[{"type": "AIMessageChunk", "id": "m", "content": "b"}, {}]', "1001-0"),
    SseFrame("messages", '[{"type": "AIMessageChunk", "id": "m", "content": "c"}, {}]', "1001-0"),
    SseFrame("messages", "{garbage", "1002-0"),
    SseFrame("updates", '{"model": {"messages": []}}', "1003-0"),
]


class FakeClient:
    """Serves FRAMES like the server; the first connection dies after ``drop_after`` frames."""

    def __init__(self, drop_after: int) -> None:
        self.drop_after = drop_after
        self.markers: list[str] = []

    async def runs(self, thread_id: str, *, limit: int = 10) -> list[dict[str, Any]]:
        return []

    async def join(
        self, thread_id: str, run_id: str, last_event_id: str
    ) -> AsyncIterator[SseFrame]:
        self.markers.append(last_event_id)
        first = len(self.markers) == 1
        for n, frame in enumerate(
            f for f in FRAMES if last_event_id == "-" or (f.id or "") > last_event_id
        ):
            if first and n == self.drop_after:
                raise RuntimeUnreachable("dropped")
            yield frame

    async def run(self, thread_id: str, run_id: str) -> dict[str, Any]:
        return {"run_id": run_id, "status": "success"}

    async def thread(self, thread_id: str) -> dict[str, Any]:
        return {"thread_id": thread_id, "status": "idle"}


async def _collect(drop_after: int) -> tuple[list[NativeEvent], FakeClient]:
    client = FakeClient(drop_after)
    streams = RunStreams(client)  # type: ignore[arg-type]
    sub = await streams.subscribe("t1")
    streams.follow("t1", "r1")
    events: list[NativeEvent] = []
    async with asyncio.timeout(10):
        async for event in sub:
            events.append(event)
            if event.type == RUN_END:
                break
    await streams.aclose()
    return events, client


def _texts(events: list[NativeEvent]) -> list[str]:
    return [e.payload["data"][0]["content"] for e in events if e.type == "messages"]


async def test_clean_stream_forwards_every_frame_then_the_run_end() -> None:
    events, client = await _collect(drop_after=99)
    assert client.markers == ["-"]
    assert _texts(events) == ["a", "b", "c"]
    assert [e.type for e in events if e.type != "messages"] == ["metadata", "updates", RUN_END]
    assert events[-1].payload == {"run_id": "r1", "status": "success", "thread_status": "idle"}


async def test_drop_inside_a_millisecond_loses_and_repeats_nothing() -> None:
    # Dropped after "a" and "b" (both "1001-0"): resuming from "1001-0" itself would lose "c".
    events, client = await _collect(drop_after=3)
    assert client.markers == ["-", "1000-0"]
    assert _texts(events) == ["a", "b", "c"]
    assert [e.type for e in events].count(STREAM_RESUMED) == 1
    assert [e.type for e in events].count("metadata") == 1
    assert events[-1].type == RUN_END
