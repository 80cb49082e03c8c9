"""The whole user journey through the public API only, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from tests.support.corral import CorralServer, ok
from tests.support.sse import events_of, read_stream, turn_done


async def _setup(corral: CorralServer, sim_url: str) -> dict[str, Any]:
    async with corral.admin() as admin:
        team = await ok(await admin.post("/v1/teams", json={"name": "platform"}), 201)
        dev = await ok(
            await admin.post(
                "/v1/users",
                json={
                    "name": "Dee",
                    "email": "dee@example.com",
                    "team_id": team["id"],
                    "role": "developer",
                },
            ),
            201,
        )
        key = await ok(
            await admin.post("/v1/keys", json={"name": "dee-laptop", "user_id": dev["id"]}), 201
        )
        runtime = await ok(
            await admin.post(
                "/v1/runtimes", json={"name": "oc", "kind": "opencode", "base_url": sim_url}
            ),
            201,
        )
        creds = await ok(
            await admin.put(
                f"/v1/runtimes/{runtime['id']}/credentials",
                json={"credentials": {"username": "opencode", "password": "s3cret-pw"}},
            )
        )
        assert creds["credentials"][0]["set"] is True
        assert "s3cret-pw" not in str(creds)
    return {"team": team, "dev": dev, "key": key["key"], "runtime": runtime}


async def test_full_journey(corral: CorralServer, opencode_sim_url: str) -> None:
    ctx = await _setup(corral, opencode_sim_url)
    async with corral.client(ctx["key"]) as dev:
        agent = await ok(
            await dev.post(
                "/v1/agents",
                json={
                    "name": "helper",
                    "runtime_id": ctx["runtime"]["id"],
                    "model": "mock/mock-model",
                    "instructions": "Be brief.",
                },
            ),
            201,
        )
        assert agent["team_id"] == ctx["team"]["id"] and agent["version"] == 1

        # Turn 1: streamed text and a tool call that needs no approval.
        session = await ok(
            await dev.post(
                "/v1/sessions",
                json={
                    "agent_id": agent["id"],
                    "input": 'look [[tool:read {"filePath":"hello.txt"}]]',
                },
            ),
            201,
        )
        sid = session["id"]
        assert session["agent_version"] == 1
        frames = events_of(await read_stream(dev, sid, until=turn_done))
        types = [f.event for f in frames]
        for expected in ("session.created", "turn.started", "tool.call", "tool.result", "message.delta",
                         "message.completed", "usage", "turn.completed"):  # fmt: skip
            assert expected in types, (expected, types)
        assert [f.id for f in frames] == list(range(1, len(frames) + 1))
        assert frames[-1].data["data"]["stop_reason"] == "end_turn"

        # Turn 2: a permission asked by the runtime and answered by the developer.
        await ok(
            await dev.post(
                f"/v1/sessions/{sid}/messages",
                json={"text": '[[tool:bash {"command":"echo hi","description":"say hi"}]]'},
            ),
            202,
        )
        asked = await read_stream(
            dev, sid, last_event_id=frames[-1].id, until=lambda f: f.event == "approval.requested"
        )
        approval = events_of(asked)[-1].data["data"]
        assert approval["name"] == "bash" and approval["choices"]
        state = await ok(await dev.get(f"/v1/sessions/{sid}"))
        assert state["state"] == "waiting_approval"
        pending = await ok(
            await dev.get(f"/v1/sessions/{sid}/approvals", params={"status": "pending"})
        )
        assert [a["id"] for a in pending] == [approval["approval_id"]]
        resolved = await ok(
            await dev.post(
                f"/v1/sessions/{sid}/approvals/{approval['approval_id']}",
                json={"decision": "allow_once"},
            )
        )
        assert resolved["status"] == "resolved" and resolved["resolved_by"] == ctx["dev"]["id"]
        again = await dev.post(
            f"/v1/sessions/{sid}/approvals/{approval['approval_id']}", json={"decision": "deny"}
        )
        assert again.status_code == 409 and again.json()["code"] == "approval_not_pending"
        rest = await read_stream(dev, sid, last_event_id=events_of(asked)[-1].id, until=turn_done)
        rest_types = [f.event for f in events_of(rest)]
        assert rest_types.count("approval.resolved") == 1
        tool_results = [f.data["data"] for f in events_of(rest) if f.event == "tool.result"]
        assert tool_results and tool_results[0]["output"].strip() == "hi"

        # Resume from the middle: no gap, no duplicate.
        everything = await ok(await dev.get(f"/v1/sessions/{sid}/events", params={"limit": 200}))
        seqs = [e["seq"] for e in everything["data"]]
        assert seqs == list(range(1, len(seqs) + 1))
        middle = seqs[len(seqs) // 2]
        resumed = events_of(
            await read_stream(dev, sid, last_event_id=middle, until=lambda f: f.id == seqs[-1])
        )
        assert [f.id for f in resumed] == seqs[middle:]

        done = await ok(await dev.get(f"/v1/sessions/{sid}"))
        assert done["state"] == "idle" and done["turns"] == 2
        assert done["input_tokens"] > 0 and done["cost_usd"] > 0

        # Cancel mid-stream.
        slow = await ok(
            await dev.post(
                "/v1/sessions", json={"agent_id": agent["id"], "input": "[[slow:5]] take your time"}
            ),
            201,
        )
        await read_stream(dev, slow["id"], until=lambda f: f.event == "message.delta")
        cancelled = await ok(await dev.post(f"/v1/sessions/{slow['id']}/cancel"))
        assert cancelled["state"] in ("cancelling", "idle")
        end = await read_stream(dev, slow["id"], until=turn_done)
        assert events_of(end)[-1].data["data"]["stop_reason"] == "cancelled"
        await _wait_state(dev, slow["id"], "idle")

        # Fleet query: filters and pagination, newest first.
        for i in range(3):
            await ok(
                await dev.post("/v1/sessions", json={"agent_id": agent["id"], "title": f"t{i}"}),
                201,
            )
        page1 = await ok(
            await dev.get("/v1/sessions", params={"agent_id": agent["id"], "limit": 2})
        )
        assert len(page1["data"]) == 2 and page1["next_cursor"]
        page2 = await ok(
            await dev.get(
                "/v1/sessions",
                params={"agent_id": agent["id"], "limit": 2, "cursor": page1["next_cursor"]},
            )
        )
        listed = page1["data"] + page2["data"]
        page3 = (
            await ok(
                await dev.get(
                    "/v1/sessions",
                    params={"agent_id": agent["id"], "limit": 2, "cursor": page2["next_cursor"]},
                )
            )
            if page2["next_cursor"]
            else {"data": [], "next_cursor": None}
        )
        listed += page3["data"]
        assert len({s["id"] for s in listed}) == 5
        # As instants: ISO text drops ".000000", so strings do not sort like times.
        created = [datetime.fromisoformat(s["created_at"]) for s in listed]
        assert created == sorted(created, reverse=True)
        idle = await ok(
            await dev.get("/v1/sessions", params={"state": "idle", "agent_id": agent["id"]})
        )
        assert {s["id"] for s in idle["data"]} == {sid, slow["id"]}


async def _wait_state(client: Any, sid: str, state: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        body = await ok(await client.get(f"/v1/sessions/{sid}"))
        if body["state"] == state or asyncio.get_running_loop().time() > deadline:
            assert body["state"] == state, body
            return body
        await asyncio.sleep(0.05)
