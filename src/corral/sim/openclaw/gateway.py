"""The simulated gateway's WebSocket endpoint: handshake and the RPC methods Corral needs.

Handshake as on openclaw 2026.9.6: the server sends ``connect.challenge {nonce, ts}``; the first
client frame must be a ``connect`` request for protocol 4 (else ``PROTOCOL_MISMATCH``) with the
gateway token (else ``UNAUTHORIZED``), answered by ``hello-ok``. Then: ``sessions.create``,
``sessions.messages.subscribe``/``unsubscribe``, ``chat.send``/``sessions.send``,
``chat.abort``/``sessions.abort``, ``chat.history``, ``exec.approval.list``/``resolve``,
``health``. Unknown methods answer ``INVALID_REQUEST``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from corral.sim.openclaw.config import PROTOCOL_VERSION
from corral.sim.openclaw.runner import start_next
from corral.sim.openclaw.state import Client, GatewayState, Run, Session, now_ms


class RpcError(Exception):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details

    def shape(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return error


def _str(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise RpcError("INVALID_REQUEST", f"invalid params: {name} must be a non-empty string")
    return value


def _session(state: GatewayState, key: str) -> Session:
    session = state.sessions.get(key)
    if session is None:
        raise RpcError("INVALID_REQUEST", f"unknown session key: {key}")
    return session


Handler = Callable[[GatewayState, Client, dict[str, Any]], Awaitable[Any]]


async def sessions_create(state: GatewayState, client: Client, params: dict[str, Any]) -> Any:
    if "idempotencyKey" in params:
        raise RpcError(
            "INVALID_REQUEST",
            "idempotent session creation requires an authenticated principal or device identity",
        )
    agent_id = params.get("agentId") or state.config.agents[0]
    if agent_id not in state.config.agents:
        raise RpcError("INVALID_REQUEST", f"unknown agent id: {agent_id}")
    key = f"agent:{agent_id}:dashboard:{uuid.uuid4()}"
    model = params.get("model") or f"{state.config.provider}/{state.config.model}"
    session = Session(key, str(uuid.uuid4()), agent_id, params.get("displayName"), model)
    state.sessions[key] = session
    entry = {
        "sessionId": session.session_id,
        "createdAt": session.created_at,
        "updatedAt": session.created_at,
        "createdVia": "operator",
        "displayName": session.display_name,
    }
    provider, _, model_id = model.partition("/")
    return {
        "ok": True,
        "key": key,
        "sessionId": session.session_id,
        "entry": entry,
        "runStarted": False,
        "resolved": {"modelProvider": provider, "model": model_id},
    }


async def messages_subscribe(state: GatewayState, client: Client, params: dict[str, Any]) -> Any:
    key = _str(params, "key")
    _session(state, key)
    client.subscriptions.add(key)
    return {"subscribed": True, "key": key}


async def messages_unsubscribe(state: GatewayState, client: Client, params: dict[str, Any]) -> Any:
    key = _str(params, "key")
    client.subscriptions.discard(key)
    return {"subscribed": False, "key": key}


async def chat_send(state: GatewayState, client: Client, params: dict[str, Any]) -> Any:
    key = params.get("sessionKey") or params.get("key")
    session = _session(state, key if isinstance(key, str) else "")
    message = params.get("message")
    if not isinstance(message, str):
        raise RpcError("INVALID_REQUEST", "invalid params: message must be a string")
    run = Run(run_id=str(uuid.uuid4()), text=message, scopes=frozenset(client.scopes))
    session.queued.append(run)
    start_next(state, session)
    return {"runId": run.run_id, "status": "started"}


async def chat_abort(state: GatewayState, client: Client, params: dict[str, Any]) -> Any:
    key = params.get("sessionKey") or params.get("key")
    session = _session(state, key if isinstance(key, str) else "")
    run = session.run
    if run is None or run.task is None:
        return {"ok": True, "aborted": False, "runIds": []}
    run.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait({run.task}, timeout=5.0)
    return {"ok": True, "aborted": True, "runIds": [run.run_id]}


async def chat_history(state: GatewayState, client: Client, params: dict[str, Any]) -> Any:
    session = _session(state, _str(params, "sessionKey"))
    limit = params.get("limit")
    rows = session.transcript
    if isinstance(limit, int) and limit > 0:
        rows = rows[-limit:]
    return {
        "sessionKey": session.key,
        "sessionId": session.session_id,
        "messages": rows,
        "hasMore": len(rows) < len(session.transcript),
        "totalMessages": len(session.transcript),
        "sessionInfo": session.info(),
    }


async def approval_list(state: GatewayState, client: Client, params: dict[str, Any]) -> Any:
    if "operator.admin" not in client.scopes:
        return []  # records are visible to admins (or paired reviewer devices) only
    return [a.record() for a in state.approvals.values()]


async def approval_resolve(state: GatewayState, client: Client, params: dict[str, Any]) -> Any:
    if not client.scopes & {"operator.admin", "operator.approvals"}:
        raise RpcError("FORBIDDEN", "missing scope: operator.approvals")
    approval = state.approvals.get(_str(params, "id"))
    if approval is None or approval.decision.done():
        raise RpcError("INVALID_REQUEST", "unknown or expired approval id")
    decision = _str(params, "decision")
    if decision not in approval.request["allowedDecisions"]:
        raise RpcError("INVALID_REQUEST", f"decision {decision} is not allowed for this approval")
    approval.decision.set_result(decision)
    return {"ok": True}


async def health(state: GatewayState, client: Client, params: dict[str, Any]) -> Any:
    return {"ok": True, "ts": now_ms()}


METHODS: dict[str, Handler] = {
    "health": health,
    "sessions.create": sessions_create,
    "sessions.messages.subscribe": messages_subscribe,
    "sessions.messages.unsubscribe": messages_unsubscribe,
    "chat.send": chat_send,
    "sessions.send": chat_send,
    "chat.abort": chat_abort,
    "sessions.abort": chat_abort,
    "chat.history": chat_history,
    "exec.approval.list": approval_list,
    "exec.approval.resolve": approval_resolve,
    "approval.resolve": approval_resolve,
}


def _hello(state: GatewayState, client: Client) -> dict[str, Any]:
    return {
        "type": "hello-ok",
        "protocol": PROTOCOL_VERSION,
        "server": {"version": state.config.version, "connId": client.conn_id},
        "features": {
            "methods": sorted(METHODS),
            "events": [
                "chat",
                "agent",
                "session.message",
                "exec.approval.requested",
                "exec.approval.resolved",
                "tick",
            ],
        },
        "snapshot": {},
        "auth": {"method": "token", "role": "operator", "scopes": sorted(client.scopes)},
        "policy": {
            "maxPayload": 26214400,
            "maxBufferedBytes": 52428800,
            "tickIntervalMs": int(state.config.tick_interval_s * 1000),
        },
    }


def _connect(state: GatewayState, params: Any) -> Client:
    if not isinstance(params, dict):
        raise RpcError("INVALID_REQUEST", "invalid connect params")
    low, high = params.get("minProtocol"), params.get("maxProtocol")
    if not (isinstance(low, int) and isinstance(high, int) and low <= PROTOCOL_VERSION <= high):
        details = {
            "code": "PROTOCOL_MISMATCH",
            "clientMinProtocol": low,
            "clientMaxProtocol": high,
            "expectedProtocol": PROTOCOL_VERSION,
        }
        raise RpcError("INVALID_REQUEST", "protocol mismatch", details)
    token = (params.get("auth") or {}).get("token")
    if state.config.token is not None and token != state.config.token:
        message = "unauthorized: gateway token mismatch (provide gateway auth token)"
        details = {
            "code": "AUTH_TOKEN_MISMATCH",
            "authReason": "token_mismatch",
            "canRetryWithDeviceToken": False,
        }
        raise RpcError("INVALID_REQUEST", message, details)
    client = params.get("client") or {}
    scopes = {s for s in params.get("scopes") or [] if isinstance(s, str)}
    caps = {c for c in params.get("caps") or [] if isinstance(c, str)}
    return Client(str(uuid.uuid4()), str(client.get("id") or ""), scopes, caps)


async def _writer(websocket: WebSocket, client: Client) -> None:
    while (text := await client.outbox.get()) is not None:
        await websocket.send_text(text)
    await websocket.close(1012)  # fault hook: the "gateway restarting" close


async def _ticker(state: GatewayState, client: Client) -> None:
    while True:
        await asyncio.sleep(state.config.tick_interval_s)
        client.event("tick", {"ts": now_ms()})


async def gateway_endpoint(websocket: WebSocket) -> None:
    state: GatewayState = websocket.app.state.gateway
    await websocket.accept()
    nonce = str(uuid.uuid4())
    await websocket.send_json(
        {"type": "event", "event": "connect.challenge", "payload": {"nonce": nonce, "ts": now_ms()}}
    )
    try:
        first = json.loads(await websocket.receive_text())
        if not isinstance(first, dict) or first.get("method") != "connect":
            await websocket.close(1008, "first frame must be connect")
            return
        client = _connect(state, first.get("params"))
    except RpcError as exc:
        error = exc.shape()
        await websocket.send_json(
            {"type": "res", "id": first.get("id"), "ok": False, "error": error}
        )
        # As observed: 1002 for a protocol mismatch, 1008 (policy) for bad credentials.
        close = 1002 if (exc.details or {}).get("code") == "PROTOCOL_MISMATCH" else 1008
        await websocket.close(close, exc.message[:100])
        return
    except (ValueError, WebSocketDisconnect):
        return
    state.clients[client.conn_id] = client
    client.send(
        {"type": "res", "id": first.get("id"), "ok": True, "payload": _hello(state, client)}
    )
    tasks = [
        asyncio.create_task(_writer(websocket, client)),
        asyncio.create_task(_ticker(state, client)),
    ]
    try:
        await _serve(state, client, websocket, tasks[0])
    finally:
        state.clients.pop(client.conn_id, None)
        for task in tasks:
            task.cancel()


async def _serve(state: GatewayState, client: Client, websocket: WebSocket, writer: Any) -> None:
    pending: set[asyncio.Task[None]] = set()
    while not writer.done():
        try:
            raw = await websocket.receive_text()
        except (WebSocketDisconnect, RuntimeError):
            return
        try:
            frame = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(frame, dict) or frame.get("type") != "req":
            continue
        # Answered concurrently, so responses may come out of order (as documented).
        task = asyncio.create_task(_answer(state, client, frame))
        pending.add(task)
        task.add_done_callback(pending.discard)


async def _answer(state: GatewayState, client: Client, frame: dict[str, Any]) -> None:
    rid, method = frame.get("id"), frame.get("method")
    raw = frame.get("params")
    params: dict[str, Any] = raw if isinstance(raw, dict) else {}
    handler = METHODS.get(method) if isinstance(method, str) else None
    try:
        if handler is None:
            raise RpcError("INVALID_REQUEST", f"unknown method: {method}")
        payload = await handler(state, client, params)
    except RpcError as exc:
        client.send(
            {
                "type": "res",
                "id": rid,
                "ok": False,
                "error": exc.shape(),
            }
        )
        return
    client.send({"type": "res", "id": rid, "ok": True, "payload": payload})
