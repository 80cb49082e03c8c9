"""An HTTP proxy that misbehaves on command, put between Corral and a runtime under test.

It forwards every request to the runtime unchanged and streams responses through as they
arrive. Two faults can be ordered from the test thread at any time:

* ``drop_streams()``: every streaming (``text/event-stream``) response open right now is cut
  mid-flight, like a load balancer or a flaky network would;
* ``inject_malformed()``: the next SSE frame boundary of any stream gets one extra frame whose
  data is not JSON, like a buggy runtime would send.

It works the same in front of a simulator or a real server, so the conformance suite checks
an adapter's reconnect and garbage handling against the real thing too.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from corral.sim._server import BackgroundServer

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "content-length"}
_POLL_S = 0.05
MALFORMED_FRAME = b"event: message\ndata: {this is not json\n\n"


class _Dropped(Exception):
    """Raised inside a streaming body: the server then aborts the connection."""


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._lock = threading.Lock()
        self._drop_generation = 0
        self._pending_malformed = 0
        self.injected = 0
        self.dropped = 0
        self.streams_opened = 0

    # -- controls (any thread) -------------------------------------------------------------

    def drop_streams(self) -> None:
        with self._lock:
            self._drop_generation += 1

    def inject_malformed(self, count: int = 1) -> None:
        with self._lock:
            self._pending_malformed += count

    def _take_malformed(self) -> bool:
        with self._lock:
            if self._pending_malformed <= 0:
                return False
            self._pending_malformed -= 1
            self.injected += 1
            return True

    # -- the proxy -------------------------------------------------------------------------

    def app(self) -> Starlette:
        client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=5.0))

        async def forward(request: Request) -> Response:
            url = self.upstream + request.url.path
            headers = [(k, v) for k, v in request.headers.items() if k.lower() != "host"]
            outgoing = client.build_request(
                request.method,
                url,
                params=request.query_params,
                headers=headers,
                content=await request.body(),
            )
            try:
                upstream = await client.send(outgoing, stream=True)
            except httpx.TransportError:
                return Response(status_code=502)
            out_headers = {
                k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP
            }
            if not upstream.headers.get("content-type", "").startswith("text/event-stream"):
                body = await upstream.aread()
                await upstream.aclose()
                return Response(body, upstream.status_code, out_headers)
            return StreamingResponse(self._relay(upstream), upstream.status_code, out_headers)

        methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
        return Starlette(routes=[Route("/{path:path}", forward, methods=methods)])

    async def _relay(self, upstream: httpx.Response) -> AsyncIterator[bytes]:
        with self._lock:
            generation = self._drop_generation
            self.streams_opened += 1
        chunks = upstream.aiter_raw()
        pending: asyncio.Task[bytes] | None = None
        at_boundary = True
        try:
            while True:
                if at_boundary and self._take_malformed():
                    yield MALFORMED_FRAME
                if pending is None:
                    pending = asyncio.ensure_future(anext(chunks))
                done, _ = await asyncio.wait({pending}, timeout=_POLL_S)
                if self._drop_generation != generation:
                    with self._lock:
                        self.dropped += 1
                    raise _Dropped
                if not done:
                    continue
                try:
                    chunk = pending.result()
                except StopAsyncIteration:
                    return
                pending = None
                at_boundary = chunk.endswith(b"\n\n") or chunk.endswith(b"\r\n\r\n")
                yield chunk
        finally:
            if pending is not None:
                pending.cancel()
            await upstream.aclose()


@contextmanager
def fault_proxy(upstream: str) -> Iterator[tuple[FaultProxy, str]]:
    """A proxy in front of ``upstream``: yields it and the URL to use instead."""
    proxy = FaultProxy(upstream)
    with BackgroundServer(proxy.app()) as url:
        yield proxy, url
