"""HTTP transport for a LangGraph Agent Server: requests, auth, SSE framing, error translation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from corral.domain.errors import RuntimeRejected, RuntimeUnreachable
from corral.runtimes.http import RUNTIME_LIMITS, runtime_event_hooks
from corral.runtimes.sse import SseFrame, iter_sse

_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
#: Modes every run streams: token chunks, and node deltas (messages, tool results, interrupts).
STREAM_MODES = ["messages-tuple", "updates"]


def _error_message(response: httpx.Response) -> str:
    """The server answers ``{"detail": ...}`` (FastAPI style) or ``{"error", "message"}``."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("detail", "message", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])[:500]
    return response.reason_phrase


class LangGraphClient:
    def __init__(self, base_url: str, *, api_key: str | None = None) -> None:
        headers = {"x-api-key": api_key} if api_key else {}
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
        self, method: str, path: str, *, json_body: Any = None, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        try:
            response = await self._http.request(method, path, json=json_body, params=params)
        except httpx.TimeoutException as exc:
            raise RuntimeUnreachable(f"LangGraph timed out on {method} {path}") from exc
        except httpx.TransportError as exc:
            raise RuntimeUnreachable(f"LangGraph is unreachable: {type(exc).__name__}") from exc
        if response.status_code in (401, 403):
            raise RuntimeRejected(
                f"LangGraph refused Corral's credentials ({response.status_code})",
                http_status=response.status_code,
            )
        if response.status_code >= 400:
            raise RuntimeRejected(
                f"LangGraph answered {response.status_code} to {method} {path}: "
                f"{_error_message(response)}",
                http_status=response.status_code,
            )
        return response

    async def json(
        self, method: str, path: str, *, json_body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        response = await self.request(method, path, json_body=json_body, params=params)
        try:
            return response.json()
        except ValueError as exc:
            raise RuntimeRejected(f"LangGraph sent a non-JSON answer to {method} {path}") from exc

    async def obj(
        self, method: str, path: str, *, json_body: Any = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body = await self.json(method, path, json_body=json_body, params=params)
        if not isinstance(body, dict):
            raise RuntimeRejected(f"LangGraph answer to {method} {path} is not an object")
        return body

    async def health(self) -> dict[str, Any]:
        return await self.obj("GET", "/ok")

    async def search_threads(self, metadata: dict[str, Any]) -> list[dict[str, Any]]:
        body = await self.json("POST", "/threads/search", json_body={"metadata": metadata})
        return [t for t in body if isinstance(t, dict)] if isinstance(body, list) else []

    async def create_thread(self, metadata: dict[str, Any]) -> dict[str, Any]:
        return await self.obj("POST", "/threads", json_body={"metadata": metadata})

    async def thread(self, thread_id: str) -> dict[str, Any]:
        return await self.obj("GET", f"/threads/{thread_id}")

    async def state(self, thread_id: str) -> dict[str, Any]:
        return await self.obj("GET", f"/threads/{thread_id}/state")

    async def runs(self, thread_id: str, *, limit: int = 10) -> list[dict[str, Any]]:
        """The thread's runs, newest first."""
        body = await self.json("GET", f"/threads/{thread_id}/runs", params={"limit": limit})
        return [r for r in body if isinstance(r, dict)] if isinstance(body, list) else []

    async def run(self, thread_id: str, run_id: str) -> dict[str, Any]:
        return await self.obj("GET", f"/threads/{thread_id}/runs/{run_id}")

    async def create_run(self, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """A background run: its events are kept (``stream_resumable``) for :meth:`join`."""
        full = {
            "stream_mode": STREAM_MODES,
            "stream_resumable": True,
            "multitask_strategy": "reject",
            **body,
        }
        run = await self.obj("POST", f"/threads/{thread_id}/runs", json_body=full)
        if not isinstance(run.get("run_id"), str):
            raise RuntimeRejected("LangGraph run answer has no run_id")
        return run

    async def cancel_run(self, thread_id: str, run_id: str) -> None:
        await self.request(
            "POST",
            f"/threads/{thread_id}/runs/{run_id}/cancel",
            params={"action": "interrupt", "wait": 0},
        )

    async def join(
        self, thread_id: str, run_id: str, last_event_id: str
    ) -> AsyncIterator[SseFrame]:
        """A run's stored and live frames after ``last_event_id`` (``-``: from the start).

        The stream simply closes when the run is done: the server sends no ``end`` frame.
        """
        timeout = httpx.Timeout(None, connect=5.0)
        headers = {"Last-Event-ID": last_event_id}
        path = f"/threads/{thread_id}/runs/{run_id}/stream"
        try:
            async with self._http.stream("GET", path, headers=headers, timeout=timeout) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise RuntimeRejected(
                        f"LangGraph run stream answered {response.status_code}: "
                        f"{_error_message(response)}",
                        http_status=response.status_code,
                    )
                async for frame in iter_sse(response):
                    yield frame
        except httpx.TimeoutException as exc:
            raise RuntimeUnreachable("LangGraph run stream timed out") from exc
        except httpx.TransportError as exc:
            raise RuntimeUnreachable(f"LangGraph run stream dropped: {type(exc).__name__}") from exc
