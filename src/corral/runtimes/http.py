"""HTTP client settings every adapter shares."""

from __future__ import annotations

import httpx

#: A runtime serves many live sessions through one client, and runtimes that stream per run
#: hold one connection per live session: httpx's default cap of 100 connections would make
#: the 101st session's requests queue until they time out. Idle keep-alive stays bounded.
RUNTIME_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=64)
