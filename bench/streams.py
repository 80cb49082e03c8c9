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
from typing import Any, cast

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


class _Dechunker:
    """HTTP/1.1 chunked transfer coding, undone incrementally, one network read at a time."""

    __slots__ = ("_buffer", "_left")

    def __init__(self) -> None:
        self._buffer = b""
        self._left = 0  # payload bytes (then the CRLF after them) still due in this chunk

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        buffer = self._buffer + data
        while buffer:
            if self._left:
                take = buffer[: self._left]
                out.append(take)
                self._left -= len(take)
                buffer = buffer[len(take) :]
                continue
            if buffer.startswith(b"\r\n"):
                buffer = buffer[2:]
                continue
            end = buffer.find(b"\r\n")
            if end < 0:
                break
            size = int(buffer[:end].split(b";")[0], 16)
            buffer = buffer[end + 2 :]
            self._left = size
        self._buffer = buffer
        return b"".join(out)


class _Reader(asyncio.Protocol):
    """A raw HTTP/1.1 GET kept open, recording each read with its arrival time.

    No HTTP client library on the read path: with a thousand streams open in this one process,
    per-read overhead in the measuring client is latency that would be blamed on the server.
    """

    def __init__(self, client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> None:
        url = client.base_url
        self._address = (url.host, url.port or 80)
        lines = [f"GET {path} HTTP/1.1", f"Host: {url.host}:{url.port}", "Accept: */*"]
        lines += [f"{k}: {v}" for k, v in {**client.headers, **headers}.items()
                  if k.lower() not in ("host", "accept", "connection", "accept-encoding")]  # fmt: skip
        self._request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.chunks = Chunks()
        self._head: bytes | None = b""
        self._closing = False
        self._dechunk: _Dechunker | None = None
        self._transport: asyncio.Transport | None = None
        self._closed: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def _seen(self, data: bytes) -> None:
        """Hook for subclasses, called on every read."""

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        try:
            await loop.create_connection(lambda: self, *self._address)
            await self._closed
        except OSError as exc:
            self.chunks.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.chunks.connected.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        arrived = time.time()
        if self._head is not None:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self._head[:end].decode("latin-1"), self._head[end + 4 :]
            self._head = None
            status = head.split(" ", 2)[1] if " " in head else "?"
            if status != "200":
                self.chunks.error = f"stream answered {status}"
                if self._transport is not None:
                    self._transport.close()
                return
            if "transfer-encoding: chunked" in head.lower():
                self._dechunk = _Dechunker()
            self.chunks.connected.set()
        if self._dechunk is not None:
            data = self._dechunk.feed(data)
        if data:
            self.chunks.reads.append((arrived, data))
            self._seen(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closing:  # closed by the server, or broken
            reason = f"{type(exc).__name__}: {exc}" if exc is not None else "stream ended"
            self.chunks.error = self.chunks.error or reason
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    async def close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()
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
        self._last = b""

    def _seen(self, data: bytes) -> None:
        # The marker may straddle two reads: look at the end of the previous one too.
        if _TURN_DONE in self._last + data:
            self.turn_done.set()
        self._last = data[-len(_TURN_DONE) :]


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
