"""Sending a call upstream: one pooled HTTP client, and fallback across a route's targets.

aiohttp rather than httpx here: on the gateway's hot path it costs about a third of the CPU per
request. Responses are asked for uncompressed, so streamed bytes pass straight through and the
meter can read them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp

from corral.gateway.routing import Hop

log = logging.getLogger(__name__)

#: Upstream answers that send the call on to the route's next target.
RETRYABLE = frozenset({408, 429, 500, 502, 503, 504, 529})
_CONNECT_TIMEOUT = 10.0


@dataclass(slots=True)
class Sent:
    """The answer that ends the fallback walk: a response, or the last failure."""

    hop: Hop | None
    response: aiohttp.ClientResponse | None
    attempts: int
    error: str | None = None


class Upstreams:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
            )
        return self._session

    async def send(
        self,
        hops: Sequence[Hop],
        body_for: Callable[[Hop], bytes],
        headers: Sequence[tuple[str, str]],
    ) -> Sent:
        """POST to each hop in turn until one answers with something other than 429/5xx.

        ``body_for(hop)`` is the request for that hop (the model name differs per target). The
        last hop's answer is returned whatever it is, so its error reaches the caller.
        """
        client = self._client()
        last_error: str | None = None
        for i, hop in enumerate(hops):
            final = i == len(hops) - 1
            timeout = aiohttp.ClientTimeout(
                total=None, connect=_CONNECT_TIMEOUT, sock_read=hop.upstream.timeout_seconds
            )
            try:
                response = await client.post(
                    hop.url,
                    data=body_for(hop),
                    headers=[*headers, *hop.headers],
                    timeout=timeout,
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                last_error = f"{hop.upstream.name}: {type(exc).__name__}: {exc}"
                log.warning("upstream %s unreachable (%s)", hop.upstream.name, last_error)
                continue
            if response.status in RETRYABLE and not final:
                log.info("upstream %s answered %s; trying the next target",
                         hop.upstream.name, response.status)  # fmt: skip
                response.release()
                continue
            return Sent(hop, response, i + 1)
        return Sent(None, None, len(hops), last_error or "no upstream for this model")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            await asyncio.sleep(0)
