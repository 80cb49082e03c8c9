"""Answering a runtime's request for input: validation and capability errors (the round trip
itself runs in the conformance suite on every runtime that asks for input)."""

from __future__ import annotations

from tests.support.corral import CorralServer, ok
from tests.support.fleet import make_agent, make_runtime, make_team, make_user


async def test_answer_input_errors(corral: CorralServer, opencode_sim_url: str) -> None:
    team = await make_team(corral, "t")
    dev = await make_user(corral, team["id"], "developer", "d@x.io")
    runtime = await make_runtime(corral, opencode_sim_url)
    agent = await make_agent(corral, dev["key"], runtime["id"])
    async with corral.client(dev["key"]) as client:
        session = await ok(await client.post("/v1/sessions", json={"agent_id": agent["id"]}), 201)
        path = f"/v1/sessions/{session['id']}/inputs/req_1"
        for bad in ({}, {"text": "a", "tool_results": [{"call_id": "c", "output": "o"}]}):
            response = await client.post(path, json=bad)
            assert response.status_code == 422 and response.json()["code"] == "validation"
        response = await client.post(path, json={"text": "blue"})
        # OpenCode never asks the caller for input: a clear refusal, not a silent no-op.
        assert response.status_code == 400
        assert response.json()["code"] == "capability_unsupported"
        missing = await client.post("/v1/sessions/ses_nope/inputs/req_1", json={"text": "x"})
        assert missing.status_code == 404
