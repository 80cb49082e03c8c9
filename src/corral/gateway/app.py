"""The gateway as a bare ASGI app: the model APIs, nothing else on the path.

No framework routing or middleware: a call is dispatched on its path and handled by
:class:`~corral.gateway.call.ModelCall`. A watcher waits for the client to go away while the
call runs and cancels it, which closes the upstream connection (so the upstream stops
generating) and settles the call at its estimate.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson

from corral.domain.errors import Unauthenticated
from corral.gateway.auth import presented_key
from corral.gateway.call import ModelCall, Receive, Refusal, Scope, Send, read_body
from corral.gateway.engine import Gateway
from corral.gateway.wire import WIRES, wire_for_path

#: Paths the gateway answers; ``corral serve`` sends exactly these to it.
MODEL_PATHS = frozenset({"/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/models"})
_CHAT = WIRES["openai.chat"]
_JSON = (b"content-type", b"application/json")


def is_gateway_path(path: str) -> bool:
    return path.rstrip("/") in MODEL_PATHS


class GatewayApp:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"].rstrip("/")
        if path == "/v1/models" and scope["method"] == "GET":
            await self._models(scope, send)
            return
        if path == "/healthz":
            await _json(send, 200, b'{"status":"ok"}')
            return
        wire = wire_for_path(path)
        if wire is None or scope["method"] != "POST":
            data = _CHAT.error_body(404, "not_found", f"no model API at {scope['method']} {path}")
            await _json(send, 404, data)
            return
        await self._call(ModelCall(self.gateway, wire, scope), receive, send)

    async def _call(self, call: ModelCall, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        watcher: asyncio.Task[None] | None = None
        left = False

        async def watch() -> None:
            nonlocal left
            message = await receive()
            if message["type"] == "http.disconnect" and not call.complete:
                left = True
                task.cancel()

        try:
            raw = await read_body(receive, self.gateway.max_body_bytes)
            await self.gateway.recorder.wait_for_room()
            body, hops, stream, injected = await call.admit(raw)
            watcher = asyncio.create_task(watch())
            await call.forward(send, body, hops, stream, injected)
        except Refusal as refusal:
            call.record.status, call.record.code = refusal.status, refusal.code
            if not call.sent_headers:
                await call.reply_error(send, refusal.status, refusal.code, refusal.message,
                                       refusal.headers)  # fmt: skip
        except asyncio.CancelledError:
            if not left and watcher is not None:
                raise  # the server is stopping us, not the client
            task.uncancel()
            call.aborted()
        finally:
            if watcher is not None and not watcher.done():
                watcher.cancel()
            record = call.finish()
            if record.org_id:
                self.gateway.recorder.add(record)

    async def _models(self, scope: Scope, send: Send) -> None:
        """``GET /v1/models`` in the caller's dialect (Anthropic SDKs send anthropic-version)."""
        try:
            _, subject = await self.gateway.keys.subject(presented_key(scope["headers"]))
        except Unauthenticated as exc:
            await _json(send, 401, _CHAT.error_body(401, exc.code, exc.detail))
            return
        table = await self.gateway.routes()
        routes = table.models(subject.org_id)
        anthropic = any(name == b"anthropic-version" for name, _ in scope["headers"])
        created = int(time.time())
        items: list[dict[str, Any]]
        if anthropic:
            items = [{"type": "model", "id": r.name, "display_name": r.name,
                      "created_at": (r.created_at.isoformat() if r.created_at else None)}
                     for r in routes]  # fmt: skip
            doc: dict[str, Any] = {
                "data": items, "has_more": False,
                "first_id": items[0]["id"] if items else None,
                "last_id": items[-1]["id"] if items else None,
            }  # fmt: skip
        else:
            items = [{"id": r.name, "object": "model",
                      "created": int(r.created_at.timestamp()) if r.created_at else created,
                      "owned_by": "corral"} for r in routes]  # fmt: skip
            doc = {"object": "list", "data": items}
        await _json(send, 200, orjson.dumps(doc))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.gateway.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                with contextlib.suppress(Exception):
                    await self.gateway.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _json(send: Send, status: int, data: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [_JSON, (b"content-length", str(len(data)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": data, "more_body": False})
