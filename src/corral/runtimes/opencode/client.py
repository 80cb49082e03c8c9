"""HTTP transport for ``opencode serve``: requests, auth, SSE framing and error translation only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from corral.domain.errors import RuntimeRejected, RuntimeUnreachable
from corral.runtimes.http import RUNTIME_LIMITS, runtime_event_hooks
from corral.runtimes.sse import iter_sse, json_object

_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def _error_message(response: httpx.Response) -> str:
    """OpenCode errors look like {"name", "data": {"message"}} or {"_tag"}; keep only the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        data = body.get("data")
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return str(data["message"])[:500]
        for key in ("message", "name", "_tag"):
            if isinstance(body.get(key), str):
                return str(body[key])[:500]
    return response.reason_phrase


class OpenCodeClient:
    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        directory: str | None = None,
    ) -> None:
        auth = httpx.BasicAuth(username or "opencode", password) if password else None
        self._params = {"directory": directory} if directory else {}
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            auth=auth,
            timeout=_TIMEOUT,
            limits=RUNTIME_LIMITS,
            event_hooks=runtime_event_hooks(),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, *, json_body: Any = None) -> httpx.Response:
        try:
            response = await self._http.request(method, path, json=json_body, params=self._params)
        except httpx.TimeoutException as exc:
            raise RuntimeUnreachable(f"OpenCode timed out on {method} {path}") from exc
        except httpx.TransportError as exc:
            raise RuntimeUnreachable(f"OpenCode is unreachable: {type(exc).__name__}") from exc
        if response.status_code == 401:
            raise RuntimeRejected("OpenCode refused Corral's credentials (401)", http_status=401)
        if response.status_code >= 400:
            raise RuntimeRejected(
                f"OpenCode answered {response.status_code} to {method} {path}: "
                f"{_error_message(response)}",
                http_status=response.status_code,
            )
        return response

    async def json(self, method: str, path: str, *, json_body: Any = None) -> Any:
        response = await self.request(method, path, json_body=json_body)
        try:
            return response.json()
        except ValueError as exc:
            raise RuntimeRejected(f"OpenCode sent a non-JSON answer to {method} {path}") from exc

    async def health(self) -> dict[str, Any]:
        body = await self.json("GET", "/global/health")
        if not isinstance(body, dict):
            raise RuntimeRejected("OpenCode health answer is not an object")
        return body

    async def create_session(self, title: str) -> dict[str, Any]:
        body = await self.json("POST", "/session", json_body={"title": title})
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise RuntimeRejected("OpenCode session answer has no id")
        return body

    async def prompt_async(self, session_id: str, body: dict[str, Any]) -> None:
        await self.request("POST", f"/session/{session_id}/prompt_async", json_body=body)

    async def abort(self, session_id: str) -> None:
        await self.request("POST", f"/session/{session_id}/abort")

    async def messages(self, session_id: str) -> list[dict[str, Any]]:
        body = await self.json("GET", f"/session/{session_id}/message")
        if not isinstance(body, list):
            raise RuntimeRejected("OpenCode message history is not a list")
        return body

    async def statuses(self) -> dict[str, Any]:
        body = await self.json("GET", "/session/status")
        return body if isinstance(body, dict) else {}

    async def permissions(self) -> list[dict[str, Any]]:
        body = await self.json("GET", "/permission")
        return [p for p in body if isinstance(p, dict)] if isinstance(body, list) else []

    async def reply_permission(self, permission_id: str, reply: str, message: str | None) -> None:
        payload: dict[str, Any] = {"reply": reply}
        if message:
            payload["message"] = message
        await self.request("POST", f"/permission/{permission_id}/reply", json_body=payload)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The global ``/event`` bus: data-only SSE frames, each a JSON object.

        Frames that are not JSON objects are skipped rather than killing the subscription: one
        garbled frame must not blind Corral to every session on the server.
        """
        timeout = httpx.Timeout(None, connect=5.0)
        try:
            async with self._http.stream(
                "GET", "/event", params=self._params, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    raise RuntimeRejected(f"OpenCode /event answered {response.status_code}")
                async for frame in iter_sse(response):
                    event = json_object(frame, "opencode")
                    if event is not None:
                        yield event
        except httpx.TimeoutException as exc:
            raise RuntimeUnreachable("OpenCode /event timed out") from exc
        except httpx.TransportError as exc:
            raise RuntimeUnreachable(f"OpenCode /event dropped: {type(exc).__name__}") from exc
