"""W3C trace context reaches what Corral calls: a runtime client's requests made during a turn
carry the turn's ``traceparent`` (checked on a loopback HTTP server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from corral.runtimes.http import runtime_event_hooks
from corral.runtimes.opencode.client import OpenCodeClient
from corral.telemetry.propagation import turn_context
from corral.telemetry.spans import trace_id_of, turn_span_id


@pytest.fixture
def loopback() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            body = json.dumps({"healthy": True, "version": "test"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


async def test_requests_during_a_turn_carry_its_traceparent(
    loopback: tuple[str, list[dict[str, str]]],
) -> None:
    url, seen = loopback
    async with httpx.AsyncClient(base_url=url, event_hooks=runtime_event_hooks()) as client:
        await client.get("/outside")
        with turn_context("turn_abc"):
            await client.get("/inside")
        await client.get("/after")
    outside, inside, after = seen
    assert "traceparent" not in outside and "traceparent" not in after
    expected = f"00-{trace_id_of('turn_abc')}-{turn_span_id('turn_abc')}-01"
    assert inside["traceparent"] == expected
    assert "tracestate" not in inside  # sent only when the context carries vendor state


async def test_runtime_adapters_install_the_hook(
    loopback: tuple[str, list[dict[str, str]]],
) -> None:
    url, seen = loopback
    client = OpenCodeClient(url, password="pw")
    try:
        with turn_context("turn_xyz"):
            await client.health()
    finally:
        await client.aclose()
    assert seen[0]["traceparent"].split("-")[1] == trace_id_of("turn_xyz")
    assert seen[0]["authorization"].startswith("Basic ")  # the adapter's own headers survive
