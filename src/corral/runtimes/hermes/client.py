"""HTTP transport for the Hermes Agent API server: requests, Bearer auth, SSE, error translation.

Hermes answers errors in the OpenAI envelope ``{"error": {"message", "type", "code"}}``; only the
message and code are kept, and the API key never appears in an exception's text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from corral.domain.errors import RuntimeRejected, RuntimeUnreachable
from corral.runtimes.http import RUNTIME_LIMITS, runtime_event_hooks
from corral.runtimes.sse import iter_sse, json_object

_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def _error_text(response: httpx.Response) -> tuple[str, str | None]:
    """(message, code) of an OpenAI-style error envelope, or a short fallback."""
    try:
        body = response.json()
    except ValueError:
        return (response.text[:200] or response.reason_phrase), None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        return str(error.get("message") or response.reason_phrase)[:500], (
            code if isinstance(code, str) else None
        )
    return response.reason_phrase, None


class RunStreamGone(Exception):
    """``GET /v1/runs/{id}/events`` answered 404: the stream was consumed, closed or expired."""


class HermesClient:
    def __init__(self, base_url: str, *, api_key: str | None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
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
        self, method: str, path: str, *, json_body: Any = None, ok_404: bool = False
    ) -> httpx.Response:
        try:
            response = await self._http.request(method, path, json=json_body)
        except httpx.TimeoutException as exc:
            raise RuntimeUnreachable(f"Hermes timed out on {method} {path}") from exc
        except httpx.TransportError as exc:
            raise RuntimeUnreachable(f"Hermes is unreachable: {type(exc).__name__}") from exc
        if response.status_code == 404 and ok_404:
            return response
        if response.status_code == 401:
            raise RuntimeRejected("Hermes refused Corral's API key (401)", http_status=401)
        if response.status_code >= 400:
            message, code = _error_text(response)
            suffix = f" ({code})" if code else ""
            raise RuntimeRejected(
                f"Hermes answered {response.status_code} to {method} {path}: {message}{suffix}",
                http_status=response.status_code,
            )
        return response

    async def json(
        self, method: str, path: str, *, json_body: Any = None, ok_404: bool = False
    ) -> dict[str, Any] | None:
        """The JSON object answered, or None for a tolerated 404."""
        response = await self.request(method, path, json_body=json_body, ok_404=ok_404)
        if response.status_code == 404:
            return None
        try:
            body = response.json()
        except ValueError as exc:
            raise RuntimeRejected(f"Hermes sent a non-JSON answer to {method} {path}") from exc
        if not isinstance(body, dict):
            raise RuntimeRejected(f"Hermes answer to {method} {path} is not an object")
        return body

    async def health(self) -> dict[str, Any]:
        return await self.json("GET", "/health") or {}

    async def capabilities(self) -> dict[str, Any]:
        return await self.json("GET", "/v1/capabilities") or {}

    async def create_session(self, session_id: str, title: str) -> dict[str, Any] | None:
        """Create the session row; None when it already exists (409), so retries are harmless."""
        try:
            return await self.json(
                "POST", "/api/sessions", json_body={"id": session_id, "title": title}
            )
        except RuntimeRejected as exc:
            if exc.extra.get("http_status") == 409:
                return None
            raise

    async def messages(self, session_id: str) -> list[dict[str, Any]]:
        """Stored messages of a session, oldest first; empty for a session Hermes never saw."""
        body = await self.json("GET", f"/api/sessions/{session_id}/messages", ok_404=True)
        data = (body or {}).get("data")
        return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []

    async def start_run(self, body: dict[str, Any]) -> str:
        answer = await self.json("POST", "/v1/runs", json_body=body)
        run_id = (answer or {}).get("run_id")
        if not isinstance(run_id, str):
            raise RuntimeRejected("Hermes run answer has no run_id")
        return run_id

    async def run(self, run_id: str) -> dict[str, Any] | None:
        """The run's status object, or None once Hermes forgot it (1 h TTL, or a restart)."""
        return await self.json("GET", f"/v1/runs/{run_id}", ok_404=True)

    async def approve(self, run_id: str, choice: str, request_id: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"choice": choice}
        if request_id:  # newer builds resolve one request by id; 0.19.0 resolves the oldest
            body["request_id"] = request_id
        return await self.json("POST", f"/v1/runs/{run_id}/approval", json_body=body) or {}

    async def stop(self, run_id: str) -> None:
        # 404: the run already ended (or Hermes forgot it): nothing is left to stop.
        await self.request("POST", f"/v1/runs/{run_id}/stop", ok_404=True)

    async def run_events(self, run_id: str) -> AsyncIterator[dict[str, Any]]:
        """A run's event stream: data-only SSE frames, each a JSON object with an ``event`` key.

        Hermes keeps one consumer per run and no replay, so this can be read once; a 404 raises
        :class:`RunStreamGone`. Unreadable frames are counted and skipped.
        """
        timeout = httpx.Timeout(None, connect=5.0)
        try:
            async with self._http.stream(
                "GET", f"/v1/runs/{run_id}/events", timeout=timeout
            ) as response:
                if response.status_code == 404:
                    raise RunStreamGone(run_id)
                if response.status_code >= 400:
                    raise RuntimeRejected(
                        f"Hermes run events answered {response.status_code}",
                        http_status=response.status_code,
                    )
                async for frame in iter_sse(response):
                    event = json_object(frame, "hermes")
                    if event is not None:
                        yield event
        except httpx.TimeoutException as exc:
            raise RuntimeUnreachable("Hermes run events timed out") from exc
        except httpx.TransportError as exc:
            raise RuntimeUnreachable(f"Hermes run events dropped: {type(exc).__name__}") from exc
