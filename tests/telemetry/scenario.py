"""A governed world for telemetry tests: a developer, an OpenCode agent, a deny and an allow
rule for bash, a team budget; and a session of two turns (an allowed tool, a denied one)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.corral import CorralServer, ok
from tests.support.sse import read_stream, turn_done

BASH = '[[tool:bash {"command":"echo hi","description":"say hi"}]]'
RM = '[[tool:bash {"command":"rm -rf /tmp/x","description":"clean"}]]'


async def world(corral: CorralServer, sim_url: str) -> dict[str, Any]:
    async with corral.admin() as admin:
        team = await ok(await admin.post("/v1/teams", json={"name": "platform"}), 201)
        user = await ok(await admin.post("/v1/users", json={
            "name": "dev", "email": "dev@example.com", "team_id": team["id"], "role": "developer",
        }), 201)  # fmt: skip
        key = await ok(
            await admin.post("/v1/keys", json={"name": "dev", "user_id": user["id"]}), 201
        )
        runtime = await ok(await admin.post("/v1/runtimes", json={
            "name": "oc", "kind": "opencode", "base_url": sim_url}), 201)  # fmt: skip
        await ok(await admin.put(f"/v1/runtimes/{runtime['id']}/credentials", json={
            "credentials": {"username": "opencode", "password": "s3cret-pw"}}))  # fmt: skip
    async with corral.client(key["key"]) as dev:
        agent = await ok(await dev.post("/v1/agents", json={
            "name": "helper", "runtime_id": runtime["id"], "model": "mock/mock-model"}), 201)  # fmt: skip
    async with corral.admin() as admin:
        deny = await ok(await admin.post("/v1/policies", json={
            "scope": f"agent:{agent['id']}", "kind": "tool",
            "body": {"effect": "deny", "tools": ["bash"], "arguments": {"command": {"prefix": "rm "}}},
        }), 201)  # fmt: skip
        await ok(await admin.post("/v1/policies", json={
            "scope": f"team:{team['id']}", "kind": "tool",
            "body": {"effect": "allow", "tools": ["bash"]}}), 201)  # fmt: skip
        await ok(
            await admin.put("/v1/budgets", json={"scope": f"team:{team['id']}", "limit_usd": 5})
        )
    return {"key": key["key"], "agent": agent, "runtime": runtime, "deny": deny, "user": user}


async def eventually(probe: Any, timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value or asyncio.get_running_loop().time() > deadline:
            assert value, "condition not met in time"
            return value
        await asyncio.sleep(0.1)


def walk(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for span in spans:
        out.append(span)
        out += walk(span["children"])
    return out


async def two_turns(corral: CorralServer, w: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    async with corral.client(w["key"]) as dev:
        session = await ok(
            await dev.post("/v1/sessions", json={"agent_id": w["agent"]["id"], "input": BASH}), 201
        )
        sid = session["id"]
        frames = await read_stream(dev, sid, until=turn_done)
        await ok(await dev.post(f"/v1/sessions/{sid}/messages", json={"text": RM}), 202)
        await read_stream(dev, sid, until=turn_done, last_event_id=frames[-1].id)

        async def both_turns_traced() -> Any:
            trace = await ok(await dev.get(f"/v1/sessions/{sid}/trace"))
            turns = [s for s in trace["spans"] if s["name"].startswith("invoke_agent")]
            return trace if len(turns) == 2 else None

        return sid, await eventually(both_turns_traced)
