"""The instance-wide event bus and its ``GET /event`` SSE rendering.

OpenCode has one bus per instance: every subscriber sees the events of every session,
interleaved, and must filter by session id itself. Frames are data-only (no ``event:``
or ``id:`` lines); the event id travels inside the JSON as ``evt_...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from corral.sim.opencode.ids import ascending

__all__ = ["SSE_HEADERS", "Bus", "Event", "sse_frame"]

Event = dict[str, Any]

# What the real server sends with the stream: proxies must not buffer it.
SSE_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
    "X-Content-Type-Options": "nosniff",
}


def sse_frame(event: Event) -> bytes:
    # Compact separators like JSON.stringify, so byte-level comparisons stay meaningful.
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


def _make(type_: str, properties: dict[str, Any]) -> Event:
    return {"id": ascending("evt"), "type": type_, "properties": properties}


class Bus:
    """Fan-out of published events to every live subscriber queue.

    Subscribers get unbounded queues: a slow reader must not stall a turn, and the
    simulator's lifetime (a test) is too short for memory to matter.
    """

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, type_: str, properties: dict[str, Any]) -> Event:
        # Deep-copy through JSON: callers keep mutating their part/message dicts, and a
        # queued event must show the state at publish time, as on the wire.
        event = _make(type_, json.loads(json.dumps(properties)))
        for queue in self._subscribers:
            queue.put_nowait(event)
        return event

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    async def stream(self, heartbeat_interval: float) -> AsyncIterator[bytes]:
        """SSE body: ``server.connected`` first, then events plus periodic heartbeats.

        Heartbeats keep a fixed rhythm (a timer, not an idle timeout), like the real
        server's interval, so they also appear in the middle of a busy turn.
        """
        loop = asyncio.get_running_loop()
        with self.subscribe() as queue:
            yield sse_frame(_make("server.connected", {}))
            next_beat = loop.time() + heartbeat_interval
            while True:
                try:
                    async with asyncio.timeout(max(0.0, next_beat - loop.time())):
                        event = await queue.get()
                except TimeoutError:
                    event = _make("server.heartbeat", {})
                    next_beat += heartbeat_interval
                # Whatever else is queued goes out in the same write: frame by frame alike.
                frames = [sse_frame(event)]
                while not queue.empty():
                    frames.append(sse_frame(queue.get_nowait()))
                yield b"".join(frames)
