"""Agents (versions, pause, delete), idempotency, runtime failures, and bad input."""

from __future__ import annotations

import httpx

from tests.support.corral import CorralServer, ok
from tests.support.fleet import make_agent, make_runtime, make_team, make_user
from tests.support.sse import read_stream, turn_done


async def _dev_with_agent(corral: CorralServer, base_url: str) -> tuple[dict, dict, dict]:  # type: ignore[type-arg]
    team = await make_team(corral, "a")
    dev = await make_user(corral, team["id"], "developer", "d@x.io")
    runtime = await make_runtime(corral, base_url)
    agent = await make_agent(corral, dev["key"], runtime["id"])
    return dev, runtime, agent


async def test_agent_versions_pause_resume_delete(
    corral: CorralServer, opencode_sim_url: str
) -> None:
    dev, _, agent = await _dev_with_agent(corral, opencode_sim_url)
    aid = agent["id"]
    async with corral.client(dev["key"]) as client:
        v2 = await ok(
            await client.patch(f"/v1/agents/{aid}", json={"instructions": "v2", "tools": ["read"]})
        )
        assert v2["version"] == 2 and v2["instructions"] == "v2"
        old = await ok(await client.get(f"/v1/agents/{aid}", params={"version": 1}))
        assert old["version"] == 1 and old["instructions"] is None
        versions = await ok(await client.get(f"/v1/agents/{aid}/versions"))
        assert [v["version"] for v in versions] == [2, 1]
        session = await ok(
            await client.post("/v1/sessions", json={"agent_id": aid, "input": "hi"}), 201
        )
        assert session["agent_version"] == 2
        await read_stream(client, session["id"], until=turn_done)

        await ok(await client.post(f"/v1/agents/{aid}/pause"))
        refused = await client.post("/v1/sessions", json={"agent_id": aid})
        assert refused.status_code == 409 and refused.json()["code"] == "agent_paused"
        refused = await client.post(f"/v1/sessions/{session['id']}/messages", json={"text": "more"})
        assert refused.status_code == 409 and refused.json()["code"] == "agent_paused"
        await ok(await client.post(f"/v1/agents/{aid}/resume"))
        await ok(
            await client.post(f"/v1/sessions/{session['id']}/messages", json={"text": "more"}), 202
        )
        await read_stream(
            client, session["id"], until=lambda f: f.event == "turn.completed" and f.data["seq"] > 8
        )

        dup = await client.post(
            "/v1/agents", json={"name": "helper", "runtime_id": agent["runtime_id"]}
        )
        assert dup.status_code == 409 and dup.json()["code"] == "conflict"
        assert (await client.delete(f"/v1/agents/{aid}")).status_code == 204
        assert (await client.get(f"/v1/agents/{aid}")).status_code == 404
        gone = await client.post(f"/v1/sessions/{session['id']}/messages", json={"text": "x"})
        assert gone.status_code == 409 and gone.json()["code"] == "agent_deleted"
        # The name is free again after a delete.
        await ok(
            await client.post(
                "/v1/agents", json={"name": "helper", "runtime_id": agent["runtime_id"]}
            ),
            201,
        )


async def test_idempotency_key(corral: CorralServer, opencode_sim_url: str) -> None:
    dev, _, agent = await _dev_with_agent(corral, opencode_sim_url)
    async with corral.client(dev["key"]) as client:
        body = {"agent_id": agent["id"], "title": "once"}
        headers = {"Idempotency-Key": "abc-1"}
        first = await ok(await client.post("/v1/sessions", json=body, headers=headers), 201)
        again = await ok(await client.post("/v1/sessions", json=body, headers=headers), 200)
        assert again["id"] == first["id"]
        clash = await client.post("/v1/sessions", json={**body, "title": "other"}, headers=headers)
        assert clash.status_code == 409 and clash.json()["code"] == "idempotency_mismatch"
        listed = await ok(await client.get("/v1/sessions", params={"agent_id": agent["id"]}))
        assert len(listed["data"]) == 1
        msg = {"text": "hello"}
        sent = await ok(
            await client.post(
                f"/v1/sessions/{first['id']}/messages", json=msg, headers={"Idempotency-Key": "m1"}
            ),
            202,
        )
        resent = await ok(
            await client.post(
                f"/v1/sessions/{first['id']}/messages", json=msg, headers={"Idempotency-Key": "m1"}
            ),
            202,
        )
        assert resent["turn_id"] == sent["turn_id"] and resent["input_id"] == sent["input_id"]
        await read_stream(client, first["id"], until=turn_done)
        session = await ok(await client.get(f"/v1/sessions/{first['id']}"))
        assert session["turns"] == 1


async def test_runtime_down_gives_problem_and_records_failure(corral: CorralServer) -> None:
    dev, _, agent = await _dev_with_agent(corral, "http://127.0.0.1:9")
    async with corral.client(dev["key"]) as client:
        response = await client.post("/v1/sessions", json={"agent_id": agent["id"], "input": "hi"})
        assert response.status_code == 502
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        assert problem["code"] == "runtime_unreachable" and problem["session_id"]
        session = await ok(await client.get(f"/v1/sessions/{problem['session_id']}"))
        assert session["state"] == "failed" and session["error"]["code"] == "runtime_unreachable"
        events = await ok(await client.get(f"/v1/sessions/{problem['session_id']}/events"))
        assert [e["type"] for e in events["data"]] == ["error", "session.state"]
        health = await client.get(f"/v1/runtimes/{agent['runtime_id']}/health")
        assert health.status_code == 502 and health.json()["code"] == "runtime_unreachable"


async def test_runtime_answering_garbage(corral: CorralServer, mock_llm_url: str) -> None:
    # The mock LLM is an HTTP server that is not OpenCode: every OpenCode call gets a 404.
    dev, _, agent = await _dev_with_agent(corral, mock_llm_url)
    async with corral.client(dev["key"]) as client:
        response = await client.post("/v1/sessions", json={"agent_id": agent["id"], "input": "hi"})
        assert response.status_code == 502 and response.json()["code"] == "runtime_error"
        session = await ok(await client.get(f"/v1/sessions/{response.json()['session_id']}"))
        assert session["state"] == "failed"


async def test_upstream_error_fails_the_turn_but_not_the_session(
    corral: CorralServer, opencode_sim_url: str
) -> None:
    dev, _, agent = await _dev_with_agent(corral, opencode_sim_url)
    async with corral.client(dev["key"]) as client:
        session = await ok(
            await client.post(
                "/v1/sessions", json={"agent_id": agent["id"], "input": "[[error:400]]"}
            ),
            201,
        )
        frames = await read_stream(client, session["id"], until=turn_done)
        assert frames[-1].data["data"]["stop_reason"] == "error"
        errors = [f.data["data"] for f in frames if f.event == "error"]
        assert errors and errors[0]["http_status"] == 400
        state = await ok(await client.get(f"/v1/sessions/{session['id']}"))
        assert state["state"] == "failed"
        await ok(
            await client.post(f"/v1/sessions/{session['id']}/messages", json={"text": "again"}), 202
        )


async def test_bad_input_is_a_4xx_problem(corral: CorralServer) -> None:
    async with corral.admin() as admin:
        cases = [
            (
                await admin.post(
                    "/v1/teams", content=b"{not json", headers={"content-type": "application/json"}
                ),
                400,
                "malformed_json",
            ),
            (await admin.post("/v1/teams", json={"name": "x", "extra": 1}), 422, "validation"),
            (await admin.post("/v1/teams", json={"name": 5}), 422, "validation"),
            (await admin.post("/v1/teams", json=[]), 422, "validation"),
            (
                await admin.post(
                    "/v1/teams",
                    content=b"x" * 2_000_000,
                    headers={"content-type": "application/json"},
                ),
                413,
                "payload_too_large",
            ),
            (
                await admin.post(
                    "/v1/runtimes", json={"name": "r", "kind": "nope", "base_url": "http://a"}
                ),
                422,
                "unknown_runtime_kind",
            ),
            (
                await admin.post(
                    "/v1/runtimes", json={"name": "r", "kind": "opencode", "base_url": "ftp://a"}
                ),
                422,
                "invalid_base_url",
            ),
            (
                await admin.post(
                    "/v1/runtimes",
                    json={"name": "r", "kind": "opencode", "base_url": "http://u:p@a"},
                ),
                422,
                "invalid_base_url",
            ),
            (
                await admin.get("/v1/sessions", params={"cursor": "garbage!!"}),
                422,
                "invalid_cursor",
            ),
            (await admin.get("/v1/sessions", params={"limit": 0}), 422, "validation"),
            (await admin.get("/v1/sessions", params={"state": "bogus"}), 422, "validation"),
            (
                await admin.get("/v1/sessions/ses_nope/stream", headers={"Last-Event-ID": "abc"}),
                422,
                "invalid_last_event_id",
            ),
            (await admin.get("/v1/nope"), 404, "not_found"),
            (await admin.delete("/v1/teams"), 405, "method_not_allowed"),
            (await admin.post("/v1/sessions", json={"agent_id": "agt_missing"}), 404, "not_found"),
        ]
        for response, status, code in cases:
            assert response.status_code == status, (code, response.text)
            assert response.headers["content-type"] == "application/problem+json", response.text
            body = response.json()
            assert body["code"] == code and body["status"] == status and body["detail"]


async def test_streaming_chunked_oversized_body_is_refused(corral: CorralServer) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"x" * 65536

    async with httpx.AsyncClient(
        base_url=corral.url, headers={"Authorization": f"Bearer {corral.admin_key}"}
    ) as client:
        response = await client.post(
            "/v1/teams", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
