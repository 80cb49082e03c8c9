"""SSE readers that only timestamp what arrives; parsing happens after the measurement.

:class:`CorralStream` is a client of ``GET /v1/sessions/{id}/stream``; :class:`SimTap` is a side
subscriber on a simulated OpenCode's own ``GET /event`` bus, which gives the moment the runtime
published each frame (as seen by a reader on the same machine). Both keep ``(time.time(),
bytes)`` per network read, so the reading loop stays cheap while many streams are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from bench.cluster import frame_json, parse_sse

_TURN_DONE = b"event: turn.completed"


@dataclass
class Chunks:
    """What one stream delivered: arrival time (epoch seconds) and bytes of each read."""

    reads: list[tuple[float, bytes]] = field(default_factory=list)
    error: str | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    def frames(self) -> Iterator[tuple[float, dict[str, Any]]]:
        """Each complete frame's JSON ``data`` with the arrival time of its last byte."""
        buffer = b""
        for arrived, data in self.reads:
            parsed, buffer = parse_sse(buffer + data)
            for fields in parsed:
                payload = frame_json(fields)
                if payload is not None:
                    yield arrived, payload


class _Reader:
    def __init__(self, client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> None:
        self._client = client
        self._path = path
        self._headers = headers
        self.chunks = Chunks()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._read())

    def _seen(self, data: bytes) -> None:
        """Hook for subclasses, called on every read."""

    async def _read(self) -> None:
        reads = self.chunks.reads
        try:
            async with self._client.stream("GET", self._path, headers=self._headers) as resp:
                if resp.status_code != 200:
                    self.chunks.error = f"stream answered {resp.status_code}"
                    return
                self.chunks.connected.set()
                async for data in resp.aiter_raw():
                    reads.append((time.time(), data))
                    self._seen(data)
            self.chunks.error = self.chunks.error or "stream ended"
        except httpx.HTTPError as exc:
            self.chunks.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.chunks.connected.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


class CorralStream(_Reader):
    """One client of a session's event stream, resuming after ``after``."""

    def __init__(self, client: httpx.AsyncClient, session_id: str, after: int) -> None:
        super().__init__(client, f"/v1/sessions/{session_id}/stream?after={after}", {})
        self.session_id = session_id
        self.turn_done = asyncio.Event()

    def _seen(self, data: bytes) -> None:
        if _TURN_DONE in data:
            self.turn_done.set()


class SimTap(_Reader):
    """A side subscriber on a simulated OpenCode's bus."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        super().__init__(client, "/event", {})


def parse_ts(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(value).timestamp()
    return None


def runtime_deltas(tap: Chunks) -> dict[tuple[str, int], tuple[float, str]]:
    """``(part id, text offset)`` of every text delta the runtime published -> (arrival time,
    native session id)."""
    offsets: dict[str, int] = {}
    out: dict[tuple[str, int], tuple[float, str]] = {}
    for arrived, frame in tap.frames():
        if frame.get("type") != "message.part.delta":
            continue
        props = frame.get("properties") or {}
        part, delta = props.get("partID"), props.get("delta")
        if props.get("field") != "text" or not isinstance(part, str) or not isinstance(delta, str):
            continue
        offset = offsets.get(part, 0)
        offsets[part] = offset + len(delta)
        out[(part, offset)] = (arrived, str(props.get("sessionID")))
    return out
