"""Protocol-level quirks of the simulated gateway, spoken to with a bare WebSocket client (the
same checks run against the real gateway in test_openclaw_differential.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
import websockets

from corral.runtimes.openclaw.client import CLIENT_INFO, ws_url
from corral.sim.openclaw.state import GatewayState
from tests.plugins.openclaw import SIM_TOKEN

TOKEN_PARAMS: dict[str, Any] = {"client": CLIENT_INFO, "role": "operator"}


async def handshake(url: str, token: str, low: int = 4, high: int = 4, **extra: Any) -> Any:
    """Open a socket, read the challenge, send connect; return (challenge, answer, socket)."""
    ws = await websockets.connect(ws_url(url))
    challenge = json.loads(await ws.recv())
    params = {**TOKEN_PARAMS, "minProtocol": low, "maxProtocol": high, "auth": {"token": token}}
    params.update(extra)
    await ws.send(json.dumps({"type": "req", "id": "c1", "method": "connect", "params": params}))
    return challenge, json.loads(await ws.recv()), ws


async def call(ws: Any, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Send a request and return its response, skipping events in between."""
    rid = uuid.uuid4().hex
    await ws.send(json.dumps({"type": "req", "id": rid, "method": method, "params": params}))
    while True:
        frame = json.loads(await ws.recv())
        if frame.get("type") == "res" and frame.get("id") == rid:
            return frame  # type: ignore[no-any-return]


async def check_handshake(url: str, token: str) -> dict[str, Any]:
    challenge, answer, ws = await handshake(url, token)
    await ws.close()
    assert challenge["event"] == "connect.challenge"
    assert isinstance(challenge["payload"]["nonce"], str) and challenge["payload"]["ts"] > 0
    assert answer["ok"] is True and answer["payload"]["type"] == "hello-ok"
    assert answer["payload"]["protocol"] == 4
    _, old, ws = await handshake(url, token, 3, 3)
    await ws.close()
    _, bad, ws = await handshake(url, token + "-wrong")
    await ws.close()
    return {"hello": answer["payload"], "old": old, "bad": bad}


async def check_headless_exec(url: str, token: str, scopes: list[str]) -> str:
    """Without an approval-capable client connected (scope operator.admin + cap approvals), an
    ask-mode exec is denied at once; without operator.approvals it cannot even ask."""
    _, answer, ws = await handshake(url, token, scopes=scopes, caps=["tool-events"])
    assert answer["ok"]
    try:
        key = (await call(ws, "sessions.create", {"agentId": "main"}))["payload"]["key"]
        prompt = 'run it [[tool:exec {"command":"echo hi"}]]'
        sent = await call(
            ws,
            "chat.send",
            {"sessionKey": key, "message": prompt, "idempotencyKey": uuid.uuid4().hex},
        )
        run_id = sent["payload"]["runId"]
        while True:
            frame = json.loads(await ws.recv())
            payload = frame.get("payload") or {}
            if frame.get("event") == "agent" and payload.get("runId") == run_id:
                data = payload.get("data") or {}
                if payload.get("stream") == "tool" and data.get("phase") == "result":
                    assert data["isError"] is True
                    return str(data["result"]["content"][0]["text"])
    finally:
        await ws.close()


async def test_handshake(sim: tuple[str, GatewayState]) -> None:
    seen = await check_handshake(sim[0], SIM_TOKEN)
    assert seen["old"]["error"]["details"]["code"] == "PROTOCOL_MISMATCH"
    assert seen["bad"]["error"]["details"]["code"] == "AUTH_TOKEN_MISMATCH"


HEADLESS = "exec denied: Headless runs cannot wait for interactive exec approval."
NO_SCOPE = "Exec approval registration failed: GatewayClientRequestError: missing scope"
CALLER_SCOPES = [
    (["operator.read", "operator.write", "operator.approvals"], HEADLESS),
    (["operator.read", "operator.write"], NO_SCOPE),
]


@pytest.mark.parametrize(("scopes", "expected"), CALLER_SCOPES)
async def test_exec_without_an_approver(
    sim: tuple[str, GatewayState], scopes: list[str], expected: str
) -> None:
    text = await check_headless_exec(sim[0], SIM_TOKEN, scopes)
    assert expected in json.loads(text)["error"]


async def test_http_surface(sim: tuple[str, GatewayState]) -> None:
    """Bearer auth on /v1/models; the OpenAI-compatible chat endpoint is off (404)."""
    async with httpx.AsyncClient(base_url=sim[0]) as http:
        assert (await http.get("/v1/models")).status_code == 401
        auth = {"Authorization": f"Bearer {SIM_TOKEN}"}
        models = (await http.get("/v1/models", headers=auth)).json()
        assert [m["id"] for m in models["data"]] == [
            "openclaw",
            "openclaw/default",
            "openclaw/main",
        ]
        assert (await http.post("/v1/chat/completions", headers=auth, json={})).status_code == 404
