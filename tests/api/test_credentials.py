"""Runtime credentials are resolved at call time from the vault, the narrowest scope winning."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from corral.sim._server import BackgroundServer
from corral.sim.opencode import SimConfig
from corral.sim.opencode import create_app as create_opencode_sim
from tests.support.corral import CorralServer, ok
from tests.support.fleet import make_agent, make_runtime, make_team, make_user
from tests.support.sse import read_stream, turn_done


@pytest.fixture(scope="module")
def locked_opencode(mock_llm_url: str) -> Iterator[str]:
    config = SimConfig(llm_url=mock_llm_url, password="right-password", heartbeat_interval=1.0)
    with BackgroundServer(create_opencode_sim(config)) as url:
        yield url


async def test_narrowest_credentials_win_and_changes_apply_on_the_next_call(
    corral: CorralServer, locked_opencode: str
) -> None:
    a, b = await make_team(corral, "a"), await make_team(corral, "b")
    dev_a = await make_user(corral, a["id"], "developer", "a@x.io")
    dev_b = await make_user(corral, b["id"], "developer", "b@x.io")
    runtime = await make_runtime(corral, locked_opencode)
    agent_a = await make_agent(corral, dev_a["key"], runtime["id"], "a1")
    agent_b = await make_agent(corral, dev_b["key"], runtime["id"], "b1")
    creds = f"/v1/runtimes/{runtime['id']}/credentials"
    async with corral.admin() as admin:
        await ok(await admin.put(creds, json={"credentials": {"password": "wrong"}}))
        await ok(
            await admin.put(
                creds, json={"credentials": {"password": "right-password"}, "team_id": a["id"]}
            )
        )
        shown = await ok(await admin.get(f"/v1/runtimes/{runtime['id']}"))
        assert sorted(c["scope_type"] for c in shown["credentials"]) == ["org", "team"]

    async with corral.client(dev_a["key"]) as client:
        session = await ok(
            await client.post("/v1/sessions", json={"agent_id": agent_a["id"], "input": "hi"}), 201
        )
        frames = await read_stream(client, session["id"], until=turn_done)
        assert frames[-1].data["data"]["stop_reason"] == "end_turn"

    async with corral.client(dev_b["key"]) as client:
        refused = await client.post("/v1/sessions", json={"agent_id": agent_b["id"], "input": "hi"})
        assert refused.status_code == 502 and refused.json()["code"] == "runtime_error"
        assert "wrong" not in refused.text and "right-password" not in refused.text

    async with corral.admin() as admin:  # an agent-scoped secret beats the org one at once
        body = {"credentials": {"password": "right-password"}, "agent_id": agent_b["id"]}
        await ok(await admin.put(creds, json=body))
    async with corral.client(dev_b["key"]) as client:
        session = await ok(
            await client.post("/v1/sessions", json={"agent_id": agent_b["id"], "input": "hi"}), 201
        )
        await read_stream(client, session["id"], until=turn_done)

    async with corral.admin() as admin:
        await ok(await admin.delete(creds, params={"team_id": a["id"]}))
        missing = await admin.delete(creds, params={"team_id": a["id"]})
        assert missing.status_code == 404
    async with corral.client(dev_a["key"]) as client:
        refused = await client.post("/v1/sessions", json={"agent_id": agent_a["id"], "input": "hi"})
        assert refused.status_code == 502
