"""HTTP transport for the Claude Managed Agents API: headers, JSON, paging, SSE, error translation.

Every request carries the key (``x-api-key`` with ``anthropic-version: 2023-06-01``, or
``Authorization: Bearer`` with ``2026-10-21`` as SDK 2.x sends) and the beta header. Error bodies
are the Anthropic envelope ``{"type": "error", "error": {"type", "message"}}``; only its type and
message reach Corral's errors, never a header or the key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from corral.domain.errors import RuntimeRejected, RuntimeUnreachable
from corral.runtimes.http import RUNTIME_LIMITS, runtime_event_hooks
from corral.runtimes.sse import iter_sse, json_object

BETA = "managed-agents-2026-04-01"
_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
_PAGE = 100
KIND = "claude_agents"

Json = dict[str, Any]


class StreamError(Exception):
    """The service sent ``event: error`` on the stream: the stream is over, reconnect."""


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        kind, message = error.get("type"), error.get("message")
        return f"{kind}: {message}"[:500] if kind else str(message)[:500]
    return response.reason_phrase


class ClaudeAgentsClient:
    def __init__(self, base_url: str, api_key: str | None, *, bearer: bool = False) -> None:
        headers = {"anthropic-beta": BETA, "content-type": "application/json"}
        if bearer:
            headers["anthropic-version"] = "2026-10-21"
            if api_key:
                headers["authorization"] = f"Bearer {api_key}"
        else:
            headers["anthropic-version"] = "2023-06-01"
            if api_key:
                headers["x-api-key"] = api_key
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=_TIMEOUT,
            limits=RUNTIME_LIMITS,
            event_hooks=runtime_event_hooks(),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self, method: str, path: str, *, json_body: Any = None, params: Any = None
    ) -> Any:
        try:
            response = await self._http.request(method, path, json=json_body, params=params)
        except httpx.TimeoutException as exc:
            raise RuntimeUnreachable(f"Claude Managed Agents timed out on {method} {path}") from exc
        except httpx.TransportError as exc:
            raise RuntimeUnreachable(
                f"Claude Managed Agents is unreachable: {type(exc).__name__}"
            ) from exc
        if response.status_code == 401:
            raise RuntimeRejected(
                "Claude Managed Agents refused Corral's API key (401)", http_status=401
            )
        if response.status_code >= 400:
            raise RuntimeRejected(
                f"Claude Managed Agents answered {response.status_code} to {method} {path}: "
                f"{_error_message(response)}",
                http_status=response.status_code,
            )
        try:
            return response.json()
        except ValueError as exc:
            raise RuntimeRejected(
                f"Claude Managed Agents sent non-JSON to {method} {path}"
            ) from exc

    async def obj(self, method: str, path: str, **kwargs: Any) -> Json:
        body = await self.request(method, path, **kwargs)
        if not isinstance(body, dict):
            raise RuntimeRejected(f"Claude Managed Agents answer to {method} {path} is no object")
        return body

    async def pages(
        self, path: str, params: list[tuple[str, str]] | None = None
    ) -> AsyncIterator[Json]:
        """Every item of a cursor-paged list (``{data, next_page}``), page after page."""
        page: str | None = None
        while True:
            query = list(params or [])
            if not any(k == "limit" for k, _ in query):
                query.append(("limit", str(_PAGE)))
            if page:
                query.append(("page", page))
            body = await self.obj("GET", path, params=query)
            for item in body.get("data") or []:
                if isinstance(item, dict):
                    yield item
            page = body.get("next_page")
            if not isinstance(page, str) or not page:
                return

    async def send_events(self, session_id: str, events: list[Json]) -> list[Json]:
        body = await self.obj(
            "POST", f"/v1/sessions/{session_id}/events", json_body={"events": events}
        )
        return [e for e in body.get("data") or [] if isinstance(e, dict)]

    async def stream(self, session_id: str, deltas: bool) -> AsyncIterator[Json | None]:
        """The session's SSE events as JSON objects. Yields ``None`` once the response headers
        are in (the subscription is live from then on); pings are skipped; malformed frames
        are counted and skipped; an ``event: error`` frame raises :class:`StreamError`."""
        params = httpx.QueryParams([("event_deltas[]", "agent.message")] if deltas else [])
        timeout = httpx.Timeout(None, connect=5.0)
        path = f"/v1/sessions/{session_id}/events/stream"
        # The official SDKs ask for JSON here and get SSE; do exactly what they do.
        headers = {"accept": "application/json"}
        try:
            async with self._http.stream(
                "GET", path, params=params, timeout=timeout, headers=headers
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise RuntimeRejected(
                        f"Claude Managed Agents stream answered {response.status_code}: "
                        f"{_error_message(response)}",
                        http_status=response.status_code,
                    )
                yield None
                async for frame in iter_sse(response):
                    if frame.event == "ping":
                        continue
                    if frame.event == "error":
                        raise StreamError(frame.data[:300])
                    event = json_object(frame, KIND)
                    if event is not None:
                        yield event
        except httpx.TimeoutException as exc:
            raise RuntimeUnreachable("Claude Managed Agents stream timed out") from exc
        except httpx.TransportError as exc:
            raise RuntimeUnreachable(
                f"Claude Managed Agents stream dropped: {type(exc).__name__}"
            ) from exc
