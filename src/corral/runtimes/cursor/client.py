"""HTTP transport for the Cursor Cloud Agents API: requests, auth, SSE and error translation.

Errors come as ``{"error": {"code", "message"}}`` (or the same fields at the top level, which
the official SDK also accepts); the ``code`` (``agent_busy``, ``agent_id_conflict``,
``run_not_cancellable``, ``stream_expired``, ...) is kept on :class:`RuntimeRejected` as
``extra["cursor_code"]`` so callers can branch on it. The API key never appears in a message.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import httpx

from corral.domain.errors import RuntimeRejected, RuntimeUnreachable
from corral.runtimes.http import RUNTIME_LIMITS, runtime_event_hooks
from corral.runtimes.sse import SseFrame, iter_sse

__all__ = ["CursorClient", "cursor_code"]

_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
#: Stream reads wait this long for a frame; the server sends heartbeats well within it.
_STREAM_READ_TIMEOUT = 60.0


def cursor_code(exc: RuntimeRejected) -> str | None:
    code = exc.extra.get("cursor_code")
    return code if isinstance(code, str) else None


def _error_fields(response: httpx.Response) -> tuple[str | None, str]:
    try:
        body = response.json()
    except ValueError:
        return None, (response.text[:200] or response.reason_phrase)
    holder = body.get("error") if isinstance(body, dict) else None
    holder = holder if isinstance(holder, dict) else body if isinstance(body, dict) else {}
    code = holder.get("code") if isinstance(holder.get("code"), str) else None
    message = holder.get("message")
    return code, str(message)[:500] if isinstance(message, str) else response.reason_phrase


def _rejected(response: httpx.Response, what: str) -> RuntimeRejected:
    code, message = _error_fields(response)
    status = response.status_code
    if status == 401:
        return RuntimeRejected(
            "Cursor refused Corral's API key (401)", http_status=401, cursor_code=code
        )
    detail = f"Cursor answered {status} to {what}: [{code or 'unknown'}] {message}"
    return RuntimeRejected(detail, http_status=status, cursor_code=code)


class CursorClient:
    def __init__(self, base_url: str, api_key: str | None, client_version: str) -> None:
        headers = {"x-cursor-client-type": "sdk", "x-cursor-client-version": client_version}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=_TIMEOUT,
            limits=RUNTIME_LIMITS,
            event_hooks=runtime_event_hooks(),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def json(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        what = f"{method} {path}"
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        try:
            response = await self._http.request(
                method, path, json=body, params=params, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise RuntimeUnreachable(f"Cursor timed out on {what}") from exc
        except httpx.TransportError as exc:
            raise RuntimeUnreachable(f"Cursor is unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise _rejected(response, what)
        if not response.content:
            return {}
        try:
            value = response.json()
        except ValueError as exc:
            raise RuntimeRejected(f"Cursor sent a non-JSON answer to {what}") from exc
        if not isinstance(value, dict):
            raise RuntimeRejected(f"Cursor's answer to {what} is not an object")
        return value

    # -- v1 resources ----------------------------------------------------------------------

    async def me(self) -> dict[str, Any]:
        return await self.json("GET", "/v1/me")

    async def create_agent(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.json("POST", "/v1/agents", body=body)

    async def get_agent(self, agent_id: str) -> dict[str, Any]:
        return await self.json("GET", f"/v1/agents/{agent_id}")

    async def create_run(self, agent_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.json("POST", f"/v1/agents/{agent_id}/runs", body=body)

    async def get_run(self, agent_id: str, run_id: str) -> dict[str, Any]:
        return await self.json("GET", f"/v1/agents/{agent_id}/runs/{run_id}")

    async def cancel_run(self, agent_id: str, run_id: str) -> None:
        await self.json("POST", f"/v1/agents/{agent_id}/runs/{run_id}/cancel", body={})

    async def usage(self, agent_id: str, run_id: str | None = None) -> dict[str, Any]:
        params = {"runId": run_id} if run_id else None
        return await self.json("GET", f"/v1/agents/{agent_id}/usage", params=params)

    async def conversation(self, agent_id: str) -> dict[str, Any]:
        """The v0 conversation: the only place the API lists the prompts an agent received."""
        return await self.json("GET", f"/v0/agents/{agent_id}/conversation")

    async def stream(
        self, agent_id: str, run_id: str, last_event_id: str | None
    ) -> AsyncGenerator[SseFrame, None]:
        """One run's SSE frames from after ``last_event_id`` (all of them when None)."""
        path = f"/v1/agents/{agent_id}/runs/{run_id}/stream"
        headers = {"Accept": "text/event-stream", "x-cursor-streaming": "true"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        timeout = httpx.Timeout(_STREAM_READ_TIMEOUT, connect=5.0)
        try:
            async with self._http.stream("GET", path, headers=headers, timeout=timeout) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise _rejected(resp, f"GET {path}")
                async for frame in iter_sse(resp):
                    yield frame
        except httpx.TimeoutException as exc:
            raise RuntimeUnreachable("Cursor run stream timed out") from exc
        except httpx.TransportError as exc:
            raise RuntimeUnreachable(f"Cursor run stream dropped: {type(exc).__name__}") from exc
