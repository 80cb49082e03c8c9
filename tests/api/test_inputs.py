"""Answering a runtime's request for input: validation and capability errors (the round trip
itself runs in the conformance suite on every runtime that asks for input)."""

from __future__ import annotations

from tests.support.corral import CorralServer
from tests.support.fleet import developer_agent, make_session


async def test_answer_input_errors(corral: CorralServer, opencode_sim_url: str) -> None:
    dev, agent = await developer_agent(corral, opencode_sim_url, "d@x.io")
    session = await make_session(corral, dev["key"], agent["id"])
    async with corral.client(dev["key"]) as client:
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
