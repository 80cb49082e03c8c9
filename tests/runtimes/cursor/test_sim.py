"""Quirks of the simulated Cursor API that the SDK probe does not reach (research §3, §8.6)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from corral.runtimes.sse import SseFrame, iter_sse
from tests.plugins.cursor import CURSOR_API_KEY


@pytest.fixture
async def http(cursor_sim_url: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {CURSOR_API_KEY}"}
    async with httpx.AsyncClient(base_url=cursor_sim_url, headers=headers, timeout=30) as client:
        yield client


async def frames(
    http: httpx.AsyncClient, agent: str, run: str, last: str | None = None
) -> list[SseFrame]:
    headers = {"Last-Event-ID": last} if last else {}
    out: list[SseFrame] = []
    async with http.stream("GET", f"/v1/agents/{agent}/runs/{run}/stream", headers=headers) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["x-cursor-stream-retention-seconds"]
        async for frame in iter_sse(r):
            out.append(frame)
            if frame.event == "done":
                return out
    return out


async def create(http: httpx.AsyncClient, prompt: str) -> tuple[str, str]:
    agent_id = f"bc-{uuid.uuid4()}"
    answer = await http.post("/v1/agents", json={"agentId": agent_id, "prompt": {"text": prompt}})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["agent"]["id"] == agent_id and body["run"]["status"] == "CREATING"
    return agent_id, body["run"]["id"]


def error_code(response: httpx.Response) -> Any:
    return response.json()["error"]["code"]


async def test_stream_resume_and_leading_status(http: httpx.AsyncClient) -> None:
    agent, run = await create(http, "hello world from corral")
    full = await frames(http, agent, run)
    assert full[0].event == "status" and full[0].id is None
    assert [f.event for f in full[-2:]] == ["result", "done"]
    assert all(f.id for f in full[1:] if f.event != "heartbeat")
    assert {"assistant", "interaction_update"} <= {f.event for f in full}
    middle = full[4]
    resumed = await frames(http, agent, run, last=middle.id)
    assert resumed[0].event == "status" and resumed[0].id is None  # re-sent on reconnect
    assert [f.id for f in resumed[1:]] == [f.id for f in full[5:]]
    bad = await http.get(f"/v1/agents/{agent}/runs/{run}/stream", headers={"Last-Event-ID": "nope"})
    assert bad.status_code == 400 and error_code(bad) == "invalid_last_event_id"


async def test_conflicts(http: httpx.AsyncClient) -> None:
    agent, run = await create(http, "[[slow:1]] keep busy for a moment")
    again = await http.post("/v1/agents", json={"agentId": agent, "prompt": {"text": "x"}})
    assert again.status_code == 409 and error_code(again) == "agent_id_conflict"
    busy = await http.post(f"/v1/agents/{agent}/runs", json={"prompt": {"text": "next"}})
    assert busy.status_code == 409 and error_code(busy) == "agent_busy"
    await frames(http, agent, run)
    late = await http.post(f"/v1/agents/{agent}/runs/{run}/cancel", json={})
    assert late.status_code == 409 and error_code(late) == "run_not_cancellable"
    follow = await http.post(f"/v1/agents/{agent}/runs", json={"prompt": {"text": "next"}})
    assert follow.status_code == 200 and follow.json()["run"]["agentId"] == agent
    runs = (await http.get(f"/v1/agents/{agent}/runs")).json()["items"]
    assert [r["id"] for r in runs][1] == run


async def test_auth_models_and_key_exchange(http: httpx.AsyncClient, cursor_sim_url: str) -> None:
    assert (await http.get("/v1/models")).json()["items"][0]["id"] == "mock-model"
    assert (await http.post("/auth/exchange_user_api_key", json={})).status_code == 404
    async with httpx.AsyncClient(base_url=cursor_sim_url) as anonymous:
        denied = await anonymous.get("/v1/me")
        assert denied.status_code == 401 and error_code(denied) == "unauthorized"
        basic = await anonymous.get("/v1/me", auth=(CURSOR_API_KEY, ""))
        assert basic.status_code == 200
    wrong = await http.post("/v1/agents", json={"prompt": {"text": "x"}, "model": {"id": "gpt-9"}})
    assert wrong.status_code == 400 and error_code(wrong) == "invalid_model"


async def test_v0_polling(http: httpx.AsyncClient) -> None:
    body = {"prompt": {"text": "hello v0"}, "source": {"repository": "https://github.com/o/r"}}
    launched = (await http.post("/v0/agents", json=body)).json()
    agent = launched["id"]
    assert launched["source"]["repository"] == "https://github.com/o/r"
    status = launched["status"]
    for _ in range(100):
        status = (await http.get(f"/v0/agents/{agent}")).json()["status"]
        if status == "FINISHED":
            break
        await asyncio.sleep(0.05)
    assert status == "FINISHED"
    assert (
        await http.post(f"/v0/agents/{agent}/followup", json={"prompt": {"text": "more"}})
    ).json() == {"id": agent}
    stop = await http.post(f"/v0/agents/{agent}/stop")
    assert stop.status_code in (200, 409)
    messages = (await http.get(f"/v0/agents/{agent}/conversation")).json()["messages"]
    assert [m["type"] for m in messages][:2] == ["user_message", "assistant_message"]
    assert messages[1]["text"] == "Echo: hello v0"
    assert [m["text"] for m in messages if m["type"] == "user_message"] == ["hello v0", "more"]
    assert agent in json.dumps((await http.get("/v0/agents")).json())


async def test_usage_endpoint(http: httpx.AsyncClient) -> None:
    agent, run = await create(http, "count my tokens")
    await frames(http, agent, run)
    usage = (await http.get(f"/v1/agents/{agent}/usage", params={"runId": run})).json()
    assert usage["runs"][0]["id"] == run and usage["totalUsage"]["totalTokens"] > 0
