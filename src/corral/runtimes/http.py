"""HTTP client settings every adapter shares."""

from __future__ import annotations

from typing import Any

import httpx

from corral.telemetry.propagation import inject_traceparent

#: A runtime serves many live sessions through one client, and runtimes that stream per run
#: hold one connection per live session: httpx's default cap of 100 connections would make
#: the 101st session's requests queue until they time out. Idle keep-alive stays bounded.
RUNTIME_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=64)


def runtime_event_hooks() -> dict[str, list[Any]]:
    """Request hooks for a runtime client: requests made while a turn's span is current carry
    W3C ``traceparent``/``tracestate``, so the runtime's own spans join the turn's trace."""
    return {"request": [inject_traceparent]}
