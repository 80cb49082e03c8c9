"""Keys minted for one session: its runtime's model calls are attributed to the session."""

from __future__ import annotations

import openai
import pytest

from tests.gateway.conftest import GatewaySetup
from tests.support.corral import ok
from tests.support.fleet import make_agent, make_runtime, make_team, make_user


async def test_a_session_key_attributes_calls_and_counts_on_the_session(
    gw: GatewaySetup, opencode_sim_url: str
) -> None:
    corral = gw.corral
    team = await make_team(corral, "builders")
    dev = await make_user(corral, team["id"], "developer", "dev@x.io")
    viewer = await make_user(corral, team["id"], "viewer", "viewer@x.io")
    runtime = await make_runtime(corral, opencode_sim_url)
    agent = await make_agent(corral, dev["key"], runtime["id"])
    async with corral.client(dev["key"]) as client:
        session = await ok(await client.post("/v1/sessions", json={"agent_id": agent["id"]}), 201)
        minted = await ok(await client.post(f"/v1/sessions/{session['id']}/gateway-key"), 201)
    assert minted["openai_base_url"].endswith("/v1") and minted["agent_id"] == agent["id"]
    async with corral.client(viewer["key"]) as client:
        refused = await client.post(f"/v1/sessions/{session['id']}/gateway-key")
        assert refused.status_code == 403

    runtime_client = openai.AsyncOpenAI(base_url=minted["openai_base_url"],
                                        api_key=minted["key"], max_retries=0)  # fmt: skip
    await runtime_client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "[[usage:1000,100]] go"}]
    )
    await corral.services.gateway.recorder.flush()
    async with corral.admin() as admin:
        (call,) = (await ok(await admin.get("/v1/usage/calls")))["data"]
        assert (call["session_id"], call["agent_id"], call["team_id"]) == (
            session["id"], agent["id"], team["id"])  # fmt: skip
        assert call["user_id"] == dev["user"]["id"]
        events = await ok(await admin.get(f"/v1/sessions/{session['id']}/events"))
        usage = [e for e in events["data"] if e["type"] == "usage"]
        assert usage and usage[-1]["data"]["cost_source"] == "gateway"
        assert usage[-1]["data"]["input_tokens"] == 1000
        shown = await ok(await admin.get(f"/v1/sessions/{session['id']}"))
        assert shown["input_tokens"] >= 1000 and shown["cost_usd"] > 0

        # A budget on the agent now applies to the runtime's model calls.
        await ok(await admin.put("/v1/budgets", json={"scope": f"agent:{agent['id']}",
                                                      "limit_usd": 0}))  # fmt: skip
    with pytest.raises(openai.APIStatusError) as err:
        await runtime_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "again"}]
        )
    assert err.value.status_code == 402 and err.value.code == "budget_exceeded"
