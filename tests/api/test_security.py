"""Secrets never leak; revocation is immediate; teams cannot see each other's things."""

from __future__ import annotations

import logging

import pytest

from tests.support.corral import CorralServer, ok
from tests.support.fleet import make_agent, make_runtime, make_team, make_user
from tests.support.sse import read_stream, turn_done

SECRET = "hunter2-super-secret-value"


async def test_credentials_and_keys_never_appear_in_responses_or_logs(
    corral: CorralServer, opencode_sim_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    team = await make_team(corral, "a")
    dev = await make_user(corral, team["id"], "developer", "d@a.io")
    runtime = await make_runtime(corral, opencode_sim_url)
    bodies: list[str] = []
    async with corral.admin() as admin:
        for request in (
            admin.put(
                f"/v1/runtimes/{runtime['id']}/credentials",
                json={"credentials": {"password": SECRET}},
            ),
            admin.put(
                f"/v1/runtimes/{runtime['id']}/credentials",
                json={"credentials": {"password": SECRET}, "team_id": team["id"]},
            ),
            admin.put(
                f"/v1/runtimes/{runtime['id']}/credentials",
                json={"credentials": {"password": SECRET}, "bogus": 1},
            ),
            admin.put(f"/v1/runtimes/{runtime['id']}/credentials", json={"credentials": SECRET}),
            admin.get(f"/v1/runtimes/{runtime['id']}"),
            admin.get("/v1/runtimes"),
            admin.get("/v1/keys"),
            admin.get(f"/v1/keys/{dev['key_id']}"),
        ):
            response = await request
            assert response.status_code < 500
            bodies.append(response.text)
    agent = await make_agent(corral, dev["key"], runtime["id"])
    async with corral.client(dev["key"]) as client:
        session = await ok(
            await client.post("/v1/sessions", json={"agent_id": agent["id"], "input": "hi"}), 201
        )
        frames = await read_stream(client, session["id"], until=turn_done)
        bodies.append(str([f.data for f in frames]))
        bodies.append((await client.get(f"/v1/sessions/{session['id']}/events")).text)
    everything = "\n".join(bodies) + "\n" + caplog.text
    assert SECRET not in everything
    assert dev["key"] not in everything
    assert corral.admin_key not in everything
    assert (
        dev["key"].split("_", 2)[2] not in everything
    )  # the secret half of a key, not only the whole


async def test_a_revoked_key_is_refused_on_the_next_request(corral: CorralServer) -> None:
    dev = await make_user(corral, None, "admin", "second-admin@x.io")
    async with corral.client(dev["key"]) as client:
        await ok(await client.get("/v1/me"))
        async with corral.admin() as admin:
            await ok(await admin.post(f"/v1/keys/{dev['key_id']}/revoke"))
        refused = await client.get("/v1/me")
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "key_revoked"


async def test_rotation_issues_a_working_successor_and_stops_the_old_key(
    corral: CorralServer,
) -> None:
    dev = await make_user(corral, None, "admin", "rot@x.io")
    async with corral.client(dev["key"]) as client:
        rotated = await ok(await client.post(f"/v1/keys/{dev['key_id']}/rotate"), 201)
        assert rotated["rotated_from"] == dev["key_id"] and rotated["key"] != dev["key"]
        assert (await client.get("/v1/me")).status_code == 401
    async with corral.client(rotated["key"]) as fresh:
        me = await ok(await fresh.get("/v1/me"))
        assert me["key_id"] == rotated["id"]
        listed = await ok(await fresh.get("/v1/keys"))
        assert all("key" not in k for k in listed["data"])
        assert {k["prefix"] for k in listed["data"]} >= {rotated["prefix"]}


async def test_expired_and_garbage_keys(corral: CorralServer) -> None:
    async with corral.client("ck_0123456789_nope") as client:
        assert (await client.get("/v1/me")).json()["code"] == "unauthenticated"
    async with corral.client(None) as client:
        response = await client.get("/v1/sessions")
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


async def test_team_isolation_is_404(corral: CorralServer, opencode_sim_url: str) -> None:
    a, b = await make_team(corral, "a"), await make_team(corral, "b")
    dev_a = await make_user(corral, a["id"], "developer", "a@x.io")
    dev_b = await make_user(corral, b["id"], "developer", "b@x.io")
    admin_b = await make_user(corral, b["id"], "team_admin", "ta@x.io")
    runtime = await make_runtime(corral, opencode_sim_url)
    agent_a = await make_agent(corral, dev_a["key"], runtime["id"], "a-agent")
    async with corral.client(dev_a["key"]) as client:
        session = await ok(
            await client.post("/v1/sessions", json={"agent_id": agent_a["id"], "input": "hi"}), 201
        )
        await read_stream(client, session["id"], until=turn_done)
    sid, aid = session["id"], agent_a["id"]
    async with corral.client(dev_b["key"]) as other:
        for method, path, body in (
            ("GET", f"/v1/agents/{aid}", None),
            ("PATCH", f"/v1/agents/{aid}", {"model": "x/y"}),
            ("POST", f"/v1/agents/{aid}/pause", None),
            ("DELETE", f"/v1/agents/{aid}", None),
            ("GET", f"/v1/sessions/{sid}", None),
            ("GET", f"/v1/sessions/{sid}/events", None),
            ("GET", f"/v1/sessions/{sid}/stream", None),
            ("POST", f"/v1/sessions/{sid}/messages", {"text": "x"}),
            ("POST", f"/v1/sessions/{sid}/cancel", None),
            ("POST", "/v1/sessions", {"agent_id": aid}),
        ):
            response = await other.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["code"] == "not_found"
        assert (await ok(await other.get("/v1/sessions")))["data"] == []
        assert (await ok(await other.get("/v1/sessions", params={"team_id": a["id"]})))[
            "data"
        ] == []
        assert (await ok(await other.get("/v1/agents")))["data"] == []
    async with corral.client(admin_b["key"]) as team_admin:
        response = await team_admin.put(
            f"/v1/runtimes/{runtime['id']}/credentials",
            json={"credentials": {"password": "x"}, "agent_id": aid},
        )
        assert response.status_code == 404
        response = await team_admin.put(
            f"/v1/runtimes/{runtime['id']}/credentials",
            json={"credentials": {"password": "x"}, "team_id": a["id"]},
        )
        assert response.status_code == 404
        mine = await team_admin.put(
            f"/v1/runtimes/{runtime['id']}/credentials",
            json={"credentials": {"password": "x"}, "team_id": b["id"]},
        )
        assert mine.status_code == 200
        shown = mine.json()["credentials"]
        assert [c["scope_id"] for c in shown] == [b["id"]]


async def test_roles_limit_what_a_key_may_do(corral: CorralServer, opencode_sim_url: str) -> None:
    team = await make_team(corral, "a")
    viewer = await make_user(corral, team["id"], "viewer", "v@x.io")
    dev = await make_user(corral, team["id"], "developer", "d@x.io")
    runtime = await make_runtime(corral, opencode_sim_url)
    async with corral.client(viewer["key"]) as client:
        response = await client.post("/v1/agents", json={"name": "n", "runtime_id": runtime["id"]})
        assert response.status_code == 403 and response.json()["code"] == "forbidden"
    async with corral.client(dev["key"]) as client:
        for method, path, body in (
            ("POST", "/v1/teams", {"name": "x"}),
            ("POST", "/v1/runtimes", {"name": "x", "kind": "opencode", "base_url": "http://a"}),
            ("PUT", f"/v1/runtimes/{runtime['id']}/credentials", {"credentials": {"a": "b"}}),
            ("POST", "/v1/keys", {"name": "k", "role": "admin"}),
            ("POST", "/v1/users", {"name": "u", "email": "u@x.io", "team_id": team["id"]}),
        ):
            response = await client.request(method, path, json=body)
            assert response.status_code == 403, (path, response.text)


async def test_nul_characters_are_a_client_error_never_a_500(corral: CorralServer) -> None:
    async with corral.admin() as admin:
        answers = [
            await admin.get("/v1/agents/agt_%00"),
            await admin.post("/v1/teams", json={"name": "a\u0000b"}),
            await admin.get("/v1/policies", params={"scope": "team:\x00"}),
        ]
    for response in answers:
        # PostgreSQL cannot store NUL (422 invalid_characters); SQLite can (then the usual answer).
        assert response.status_code < 500, response.text
        if response.status_code == 422:
            assert response.json()["code"] in ("invalid_characters", "validation")
