"""One WebSocket connection to an OpenClaw Gateway (protocol v4): handshake, RPC, events.

Frames are JSON text frames: requests ``{type: "req", id, method, params}``, responses
``{type: "res", id, ok, payload | error}`` and events ``{type: "event", event, payload, seq?}``.
The gateway opens with a ``connect.challenge`` event; the client answers with a ``connect``
request carrying the shared gateway token and receives ``hello-ok``. Everything here is
transport: no session logic, no mapping. Failures become ``RuntimeUnreachable`` (no socket,
timeouts, dropped connection) or ``RuntimeRejected`` (the gateway answered ``ok: false``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from corral.domain.errors import RuntimeRejected, RuntimeUnreachable
from corral.runtimes import sse

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 4
CLIENT_VERSION = "0.4.0"
#: ``gateway-client`` in ``backend`` mode may skip the device signature on loopback when it
#: authenticates with the shared gateway token (docs/gateway/protocol/handshake.md).
CLIENT_INFO = {
    "id": "gateway-client",
    "version": CLIENT_VERSION,
    "platform": "corral",
    "mode": "backend",
}
#: ``operator.approvals`` + the ``approvals`` cap make this connection an approval route: without
#: one, the gateway denies ask-mode exec calls at once ("Headless runs cannot wait ...").
#: ``operator.admin`` is what makes approvals VISIBLE to a client without a paired device
#: identity (isApprovalRecordVisibleToClient); the shared gateway token grants it anyway.
SCOPES = ["operator.read", "operator.write", "operator.approvals", "operator.admin"]
CAPS = ["tool-events", "approvals"]

_CONNECT_TIMEOUT = 10.0
_REQUEST_TIMEOUT = 30.0
#: Kind name for the shared malformed-frame counter.
KIND = "openclaw"

EventHandler = Callable[[str, dict[str, Any]], None]


def ws_url(base_url: str) -> str:
    """``http(s)://host:port[/path]`` -> ``ws(s)://host:port[/path]`` (the gateway serves both)."""
    url = base_url.rstrip("/")
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url


def _error_text(error: Any) -> tuple[str, str]:
    """(code, message); the specific code lives in ``details.code`` (``AUTH_TOKEN_MISMATCH``,
    ``PROTOCOL_MISMATCH``) under a generic top-level one (``INVALID_REQUEST``)."""
    if not isinstance(error, dict):
        return "UNKNOWN", "gateway request failed"
    details = error.get("details")
    detail_code = details.get("code") if isinstance(details, dict) else None
    code = str(detail_code or error.get("code") or "UNKNOWN")
    return code, str(error.get("message") or code)[:500]


def parse_frame(raw: str | bytes) -> dict[str, Any] | None:
    """A frame as a JSON object, or None (logged and counted like a malformed SSE frame)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return sse.json_object(sse.SseFrame("ws", text), KIND)


class GatewayConnection:
    """An authenticated connection. ``on_event(name, frame)`` sees every event frame in order."""

    def __init__(self, base_url: str, token: str | None, on_event: EventHandler) -> None:
        self._url = ws_url(base_url)
        self._token = token
        self._on_event = on_event
        self._ws: ClientConnection | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.hello: dict[str, Any] = {}
        self.closed = asyncio.Event()

    async def open(self) -> dict[str, Any]:
        try:
            self._ws = await asyncio.wait_for(
                websockets.connect(self._url, max_size=None, open_timeout=_CONNECT_TIMEOUT),
                _CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError, websockets.WebSocketException) as exc:
            raise RuntimeUnreachable(
                f"OpenClaw gateway is unreachable: {type(exc).__name__}"
            ) from exc
        try:
            await self._await_challenge()
            self._reader = asyncio.create_task(self._read(), name="openclaw-ws-reader")
            params: dict[str, Any] = {
                "minProtocol": PROTOCOL_VERSION,
                "maxProtocol": PROTOCOL_VERSION,
                "client": CLIENT_INFO,
                "role": "operator",
                "scopes": SCOPES,
                "caps": CAPS,
                "userAgent": f"corral/{CLIENT_VERSION}",
            }
            if self._token:
                params["auth"] = {"token": self._token}
            hello = await self.request("connect", params, wait=_CONNECT_TIMEOUT)
        except BaseException:
            await self.close()
            raise
        if not isinstance(hello, dict) or hello.get("type") != "hello-ok":
            await self.close()
            raise RuntimeRejected("OpenClaw gateway did not answer hello-ok")
        self.hello = hello if isinstance(hello, dict) else {}
        return self.hello

    async def _await_challenge(self) -> None:
        """The gateway speaks first; a frame other than the challenge is tolerated (older
        gateways sent none), a silent socket is not."""
        assert self._ws is not None
        try:
            raw = await asyncio.wait_for(self._ws.recv(), _CONNECT_TIMEOUT)
        except (TimeoutError, websockets.WebSocketException) as exc:
            raise RuntimeUnreachable("OpenClaw gateway sent no connect.challenge") from exc
        frame = parse_frame(raw)
        if frame is not None and frame.get("event") != "connect.challenge":
            self._dispatch(frame)

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                frame = parse_frame(raw)
                if frame is not None:
                    self._dispatch(frame)
        except websockets.WebSocketException as exc:
            log.info("OpenClaw gateway connection dropped: %s", type(exc).__name__)
        finally:
            self._fail_pending(RuntimeUnreachable("OpenClaw gateway connection closed"))
            self.closed.set()

    def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "res":
            future = self._pending.pop(str(frame.get("id")), None)
            if future is not None and not future.done():
                future.set_result(frame)
        elif kind == "event" and isinstance(frame.get("event"), str):
            try:
                self._on_event(frame["event"], frame)
            except Exception:  # a handler bug must not kill the reader for every session
                log.exception("OpenClaw event handler failed on %s", frame.get("event"))

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(exc)

    async def request(
        self, method: str, params: dict[str, Any], *, wait: float = _REQUEST_TIMEOUT
    ) -> Any:
        """Send one RPC and return its ``payload``; ``ok: false`` raises ``RuntimeRejected``."""
        if self._ws is None or self.closed.is_set():
            raise RuntimeUnreachable("OpenClaw gateway connection is closed")
        rid = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        frame = {"type": "req", "id": rid, "method": method, "params": params}
        try:
            await self._ws.send(json.dumps(frame, separators=(",", ":")))
            response = await asyncio.wait_for(future, wait)
        except TimeoutError as exc:
            raise RuntimeUnreachable(f"OpenClaw gateway timed out on {method}") from exc
        except websockets.WebSocketException as exc:
            raise RuntimeUnreachable(f"OpenClaw gateway dropped during {method}") from exc
        finally:
            self._pending.pop(rid, None)
        if not response.get("ok"):
            code, message = _error_text(response.get("error"))
            status = 401 if code.startswith("AUTH_") or code == "UNAUTHORIZED" else None
            raise RuntimeRejected(
                f"OpenClaw gateway refused {method}: {code}: {message}",
                http_status=status,
                native_code=code,
            )
        return response.get("payload")

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._reader, 2.0)
        self._fail_pending(RuntimeUnreachable("OpenClaw gateway connection closed"))
        self.closed.set()
