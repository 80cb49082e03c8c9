"""What goes into the trail, through the real API on both databases: actions, decisions,
refusals, each with who, what, on which resource, the policy version and the outcome."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from corral.audit.export import verify_file
from corral.audit.service import verify_database
from tests.audit.support import records, wait_for, world
from tests.support.corral import CorralServer, corral_settings, ok, running_corral
from tests.support.sse import read_stream, turn_done
from tests.telemetry.scenario import eventually

RM = '[[tool:bash {"command":"rm -rf /tmp/x","description":"clean"}]]'


@pytest.fixture
async def trail(database_url: str, tmp_path: Path) -> AsyncIterator[CorralServer]:
    settings = corral_settings(
        database_url, tmp_path, governance_tick_seconds=0.2, turn_estimate_usd=0.05,
        audit_checkpoint_records=10,
    )  # fmt: skip
    async with running_corral(settings) as server:
        yield server


def one(found: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    hits = [r for r in found if all(r.get(k) == v for k, v in match.items())]
    assert len(hits) == 1, (match, [(r["seq"], r["action"]) for r in found])
    return hits[0]


async def test_admin_changes_are_recorded_with_actor_and_resource(
    trail: CorralServer, opencode_sim_url: str
) -> None:
    w = await world(trail, opencode_sim_url)
    admin_id = w["admin"]
    agent_id, runtime_id = w["agent"]["id"], w["runtime"]["id"]
    async with trail.admin() as admin:
        scope = f"team:{w['team']['id']}"
        body = {"scope": scope, "kind": "tool", "body": {"effect": "deny", "tools": ["x"]}}
        created = await admin.post("/v1/policies", json=body, headers={"X-Request-ID": "req-abc.1"})
        assert created.headers["x-request-id"] == "req-abc.1"
        policy = await ok(created, 201)
        await ok(await admin.patch(f"/v1/policies/{policy['id']}", json={"enabled": False}))
        await ok(await admin.delete(f"/v1/policies/{policy['id']}"), 204)
        budget = await ok(await admin.put("/v1/budgets", json={"scope": scope, "limit_usd": 5}))
        await ok(await admin.delete(f"/v1/budgets/{budget['id']}"), 204)
        price = {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}
        await ok(await admin.put("/v1/prices/my-model", json=price))
        await ok(await admin.delete("/v1/prices/my-model"), 204)
        await ok(await admin.patch(f"/v1/runtimes/{runtime_id}", json={"name": "oc2"}))
        await ok(await admin.delete(f"/v1/runtimes/{runtime_id}/credentials"))
        rotated = await ok(await admin.post(f"/v1/keys/{w['key_ids']['team_admin']}/rotate"), 201)
        await ok(await admin.post(f"/v1/keys/{rotated['id']}/revoke"))
    async with trail.client(w["keys"]["developer"]) as dev:
        await ok(await dev.patch(f"/v1/agents/{agent_id}", json={"model": "mock/other"}))
        await ok(await dev.post(f"/v1/agents/{agent_id}/pause"))
        await ok(await dev.post(f"/v1/agents/{agent_id}/resume"))
        await ok(await dev.delete(f"/v1/agents/{agent_id}"), 204)

    async with trail.admin() as admin:
        found = await records(admin)
    seqs = [r["seq"] for r in found]
    assert seqs == sorted(seqs, reverse=True) and seqs[-1] == 1  # newest first, from genesis
    actions = [r["action"] for r in reversed(found)]
    assert actions[:3] == ["org.create", "user.create", "key.create"]  # the bootstrap
    for action in (
        "team.create", "user.create", "key.create", "runtime.create", "credential.set",
        "agent.create", "policy.create", "policy.update", "policy.delete", "budget.set",
        "budget.delete", "price.set", "price.delete", "runtime.update", "credential.delete",
        "key.rotate", "key.revoke", "agent.update", "agent.pause", "agent.resume",
        "agent.delete",
    ):  # fmt: skip
        assert action in actions, action
    made = one(found, action="policy.create")
    assert made["request_id"] == "req-abc.1"
    assert (made["policy_id"], made["policy_version"]) == (policy["id"], 1)
    assert (made["actor_type"], made["key_id"], made["user_id"], made["role"]) == (
        "key", admin_id["key_id"], admin_id["user_id"], "admin",
    )  # fmt: skip
    assert made["team_id"] == w["team"]["id"] and made["details"]["scope"] == scope
    assert len(made["details"]["body_sha256"]) == 64
    assert one(found, action="policy.update")["policy_version"] == 2
    assert one(found, action="policy.delete")["policy_version"] == 3
    paused = one(found, action="agent.pause")
    assert (paused["resource_type"], paused["resource_id"]) == ("agent", agent_id)
    assert (paused["user_id"], paused["role"]) == (w["users"]["developer"], "developer")
    assert paused["team_id"] == w["team"]["id"]
    rotate = one(found, action="key.rotate")
    assert rotate["resource_id"] == w["key_ids"]["team_admin"]
    assert rotate["details"]["successor"] == rotated["id"]
    credential = next(r for r in found if r["action"] == "credential.set")
    assert credential["details"] == {"scope_type": "org", "scope_id": admin_id["org_id"]}
    assert "s3cret-pw" not in str(found)  # secrets never reach the trail
    report = await verify_database(trail.services.db)
    assert report.ok and report.records == len(found) and report.checkpoints >= 2


async def test_sessions_decisions_and_refusals_are_recorded(
    trail: CorralServer, opencode_sim_url: str
) -> None:
    w = await world(trail, opencode_sim_url)
    agent_id, team_id = w["agent"]["id"], w["team"]["id"]
    async with trail.admin() as admin:
        budget = await ok(
            await admin.put("/v1/budgets", json={"scope": f"agent:{agent_id}", "limit_usd": 0.01})
        )
        deny = {"effect": "deny", "tools": ["bash"], "arguments": {"command": {"prefix": "rm "}}}
        policy = await ok(await admin.post("/v1/policies", json={
            "scope": f"agent:{agent_id}", "kind": "tool", "body": deny}), 201)  # fmt: skip
        await ok(await admin.patch(f"/v1/policies/{policy['id']}", json={"body": deny}))
    async with trail.client(w["keys"]["developer"]) as dev:
        refused = await dev.post("/v1/sessions", json={"agent_id": agent_id, "input": "hi"})
        assert refused.status_code == 402
        request_id = refused.headers["x-request-id"]
        async with trail.admin() as admin:
            await ok(await admin.delete(f"/v1/budgets/{budget['id']}"), 204)
        session = await ok(
            await dev.post("/v1/sessions", json={"agent_id": agent_id, "input": RM}), 201
        )
        await read_stream(dev, session["id"], until=turn_done)
    async with trail.client(w["keys"]["team_admin"]) as lead:
        await ok(await lead.post(f"/v1/sessions/{session['id']}/kill", json={"reason": "enough"}))
        # A team admin reads their team's trail: everything here is about the team's agent.
        by_request = await wait_for(lead, action="request.refused")
        denied = await wait_for(lead, action="message.send", decision="deny")
        tool = await wait_for(lead, action="tool.use", decision="deny")
        answered = await wait_for(lead, action="approval.answer")
        killed = await wait_for(lead, action="session.kill")
        started = await wait_for(lead, action="session.start")

    refusal = one(by_request, request_id=request_id)
    assert refusal["details"]["status"] == 402 and refusal["details"]["code"] == "budget_exceeded"
    assert (refusal["decision"], refusal["outcome"]) == ("deny", "denied")
    assert (refusal["key_id"], refusal["role"]) == (w["key_ids"]["developer"], "developer")
    decision = one(denied, request_id=request_id)
    assert decision["details"]["code"] == "budget_exceeded" and decision["outcome"] == "denied"
    assert decision["details"]["scope"] == f"agent:{agent_id}"
    assert (decision["resource_type"], decision["resource_id"]) == ("agent", agent_id)
    assert (decision["user_id"], decision["role"]) == (w["users"]["developer"], "developer")

    start = one(started, resource_id=session["id"])
    assert start["details"]["agent_id"] == agent_id
    # The request that started the turn is in the turn's trace: the audit names that trace.
    # Spans of a turn are stored a grace period after it ends, so wait for them.
    async with trail.admin() as admin:

        async def traced() -> Any:
            trace = await ok(await admin.get(f"/v1/sessions/{session['id']}/trace"))
            return trace if trace["spans"] else None

        trace = await eventually(traced)
    assert start["trace_id"] is not None and start["trace_id"] in str(trace)
    assert decision["trace_id"] is not None and decision["trace_id"] != start["trace_id"]
    use = tool[0]
    assert (use["policy_id"], use["policy_version"]) == (policy["id"], 2)
    assert (use["actor_type"], use["key_id"]) == ("agent", w["key_ids"]["developer"])
    assert use["resource_id"] == session["id"] and use["details"]["tool"] == "bash"
    assert len(use["details"]["arguments_sha256"]) == 64 and "rm -rf" not in str(use)
    answer = answered[0]
    assert (answer["decision"], answer["details"]["by"], answer["policy_version"]) == (
        "deny", "policy", 2)  # fmt: skip
    assert answer["actor_type"] == "system" and answer["team_id"] == team_id
    kill = one(killed, resource_id=session["id"])
    assert kill["details"]["reason"] == "enough" and kill["role"] == "team_admin"
    assert (await verify_database(trail.services.db)).ok


async def test_a_revoked_keys_last_request_and_the_revocation_are_both_recorded(
    trail: CorralServer, opencode_sim_url: str
) -> None:
    w = await world(trail, opencode_sim_url)
    key_id = w["key_ids"]["developer"]
    async with trail.client(w["keys"]["developer"]) as dev:
        last = await ok(await dev.post("/v1/sessions", json={"agent_id": w["agent"]["id"]}), 201)
        async with trail.admin() as admin:
            await ok(await admin.post(f"/v1/keys/{key_id}/revoke"))
        after = await dev.get("/v1/sessions")
        assert after.status_code == 401 and after.json()["code"] == "key_revoked"
    async with trail.admin() as admin:
        acted = await records(admin, key_id=key_id)
        revoked = await records(admin, action="key.revoke", resource_id=key_id)
    assert [r["action"] for r in acted] == ["request.refused", "session.start", "agent.create"]
    assert acted[1]["resource_id"] == last["id"]
    assert acted[0]["details"]["code"] == "key_revoked" and acted[0]["outcome"] == "denied"
    assert acted[0]["user_id"] == w["users"]["developer"]
    assert len(revoked) == 1 and revoked[0]["seq"] < acted[0]["seq"]
    assert revoked[0]["seq"] > acted[1]["seq"]


async def test_readers_see_their_scope_filtered_and_paginated(
    trail: CorralServer, opencode_sim_url: str
) -> None:
    w = await world(trail, opencode_sim_url)
    async with trail.admin() as admin:
        other = await ok(await admin.post("/v1/teams", json={"name": "elsewhere"}), 201)
        everything = await records(admin)
        page = await ok(await admin.get("/v1/audit", params={"limit": 3}))
        rest = await ok(
            await admin.get("/v1/audit", params={"limit": 3, "cursor": page["next_cursor"]})
        )
        assert [r["seq"] for r in page["data"] + rest["data"]] == [r["seq"] for r in everything[:6]]
        teams = await records(admin, resource_type="team")
        assert {r["resource_id"] for r in teams} == {w["team"]["id"], other["id"]}
        assert await records(admin, outcome="denied") == []
        since = everything[2]["ts"]
        window = await records(admin, since=since.replace("Z", "+00:00"))
        assert {r["seq"] for r in window} >= {r["seq"] for r in everything[:3]}
        for bad in ({"since": "2026-01-01T00:00:00"}, {"cursor": "nope"}, {"decision": "maybe"}):
            assert (await admin.get("/v1/audit", params=bad)).status_code == 422, bad
        exported = await admin.get("/v1/audit/export")
        assert exported.headers["content-type"].startswith("application/jsonl")
        report = verify_file(exported.text.splitlines())
        assert report.ok and report.records == len(everything)
        later = await admin.get("/v1/audit/export", params={"since": 5})
        assert verify_file(later.text.splitlines()).first_seq == 6
    async with trail.client(w["keys"]["developer"]) as dev:
        mine = await records(dev)
        assert mine and all(
            r["team_id"] == w["team"]["id"] or r["user_id"] == w["users"]["developer"] for r in mine
        )
        assert other["id"] not in str(mine) and len(mine) < len(everything)
        assert (await dev.get("/v1/audit/export")).status_code == 403
        pem = await dev.get("/v1/audit/public-key")
        assert pem.status_code == 200 and pem.text.startswith("-----BEGIN PUBLIC KEY-----")
        assert pem.headers["x-corral-audit-key-id"].startswith("ak_")
    assert (await trail.client().get("/v1/audit")).status_code == 401
