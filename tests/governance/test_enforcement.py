"""Governance on real sessions: a real Corral server, the OpenCode simulator, both databases.

Every path that spends or acts is put to decide(): session create, message send, the runtime's
permission prompts, approvals; budgets, allowlists, limits, revocation and pause are honoured on
each (the route x rule matrix), and the kill switch ends sessions on the runtime itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.corral import CorralServer, corral_settings, ok, running_corral
from tests.support.sse import events_of, read_stream, turn_done

BASH = '[[tool:bash {"command":"echo hi","description":"say hi"}]]'
RM = '[[tool:bash {"command":"rm -rf /tmp/x","description":"clean"}]]'


@pytest.fixture
async def governed(database_url: str, tmp_path: Path) -> AsyncIterator[CorralServer]:
    settings = corral_settings(
        database_url, tmp_path, governance_tick_seconds=0.2, turn_estimate_usd=0.05
    )
    async with running_corral(settings) as server:
        yield server


async def _world(corral: CorralServer, sim_url: str) -> dict[str, Any]:
    """A team with a developer, a team admin and a viewer, an OpenCode runtime and an agent."""
    async with corral.admin() as admin:
        team = await ok(await admin.post("/v1/teams", json={"name": "platform"}), 201)
        keys: dict[str, str] = {}
        users: dict[str, str] = {}
        for role in ("developer", "team_admin", "viewer"):
            user = await ok(
                await admin.post(
                    "/v1/users",
                    json={"name": role, "email": f"{role}@example.com", "team_id": team["id"],
                          "role": role},
                ),
                201,
            )  # fmt: skip
            key = await ok(
                await admin.post("/v1/keys", json={"name": role, "user_id": user["id"]}), 201
            )
            keys[role], users[role] = key["key"], user["id"]
        runtime = await ok(
            await admin.post(
                "/v1/runtimes", json={"name": "oc", "kind": "opencode", "base_url": sim_url}
            ),
            201,
        )
        await ok(
            await admin.put(
                f"/v1/runtimes/{runtime['id']}/credentials",
                json={"credentials": {"username": "opencode", "password": "s3cret-pw"}},
            )
        )
        me = await ok(await admin.get("/v1/me"))
    async with corral.client(keys["developer"]) as dev:
        agent = await ok(
            await dev.post(
                "/v1/agents",
                json={"name": "helper", "runtime_id": runtime["id"], "model": "mock/mock-model"},
            ),
            201,
        )
    return {"team": team, "keys": keys, "users": users, "runtime": runtime, "agent": agent,
            "org_id": me["org_id"]}  # fmt: skip


async def _policy(
    corral: CorralServer, scope: str, kind: str, body: dict[str, Any]
) -> dict[str, Any]:
    async with corral.admin() as admin:
        return await ok(
            await admin.post("/v1/policies", json={"scope": scope, "kind": kind, "body": body}), 201
        )


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    return body


async def _session(
    dev: httpx.AsyncClient, agent_id: str, text: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"agent_id": agent_id}
    if text is not None:
        body["input"] = text
    return await ok(await dev.post("/v1/sessions", json=body), 201)


async def _events(dev: httpx.AsyncClient, sid: str) -> list[dict[str, Any]]:
    page = await ok(await dev.get(f"/v1/sessions/{sid}/events", params={"limit": 200}))
    return list(page["data"])


async def _wait(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value or asyncio.get_running_loop().time() > deadline:
            assert value, "condition not met in time"
            return value
        await asyncio.sleep(0.05)


# -- budgets ----------------------------------------------------------------------------------


async def test_budget_refuses_a_turn_it_cannot_cover_and_names_the_scope(
    governed: CorralServer, opencode_sim_url: str
) -> None:
    w = await _world(governed, opencode_sim_url)
    scope = f"agent:{w['agent']['id']}"
    async with governed.admin() as admin:
        await ok(await admin.put("/v1/budgets", json={"scope": scope, "limit_usd": 0.01}))
    async with governed.client(w["keys"]["developer"]) as dev:
        refused = await dev.post("/v1/sessions", json={"agent_id": w["agent"]["id"], "input": "hi"})
        body = _problem(refused, 402, "budget_exceeded")
        assert body["scope"] == scope
        listed = await ok(await dev.get("/v1/sessions", params={"agent_id": w["agent"]["id"]}))
        assert listed["data"] == []  # a refused first turn leaves no session behind
        sid = (await _session(dev, w["agent"]["id"]))["id"]
        _problem(
            await dev.post(f"/v1/sessions/{sid}/messages", json={"text": "hi"}),
            402,
            "budget_exceeded",
        )


async def test_turns_settle_at_their_real_cost(
    governed: CorralServer, opencode_sim_url: str
) -> None:
    w = await _world(governed, opencode_sim_url)
    scope = f"team:{w['team']['id']}"
    # A sim turn costs a few dozen micro-dollars: a tiny estimate and budget show the threshold.
    await _policy(governed, scope, "limits", {"turn_estimate_usd": 0.001})
    async with governed.admin() as admin:
        budget = await ok(
            await admin.put(
                "/v1/budgets", json={"scope": scope, "limit_usd": 0.002, "soft_percent": 1}
            )
        )
    async with governed.client(w["keys"]["developer"]) as dev:
        session = await _session(dev, w["agent"]["id"], "hello there")
        await read_stream(dev, session["id"], until=turn_done)
        done = await ok(await dev.get(f"/v1/sessions/{session['id']}"))
        assert done["cost_usd"] > 0

        async def settled() -> Any:
            async with governed.admin() as admin:
                view = await ok(await admin.get(f"/v1/budgets/{budget['id']}"))
            return view if abs(view["spent_usd"] - done["cost_usd"]) < 1e-6 else None

        view = await _wait(settled)
        assert view["remaining_usd"] <= 0.002 - done["cost_usd"] + 1e-6
        assert view["soft_exceeded"] is True, (view, done["cost_usd"])

        # The turn's pump announces the crossing once the settlement committed: moments later.
        async def announced() -> list[Any]:
            events = await _events(dev, session["id"])
            return [e["data"] for e in events if e["type"] == "budget.threshold"]

        crossed = await _wait(announced)
        assert [c["budget_id"] for c in crossed] == [budget["id"]]


# -- tool rules on the runtime's permission prompts ------------------------------------------


async def test_deny_rule_answers_the_runtime_prompt_itself(
    governed: CorralServer, opencode_sim_url: str
) -> None:
    w = await _world(governed, opencode_sim_url)
    policy = await _policy(governed, f"agent:{w['agent']['id']}", "tool",
                           {"effect": "deny", "tools": ["bash"], "arguments": {"command": {"prefix": "rm "}}})  # fmt: skip
    await _policy(
        governed, f"team:{w['team']['id']}", "tool", {"effect": "allow", "tools": ["bash"]}
    )
    async with governed.client(w["keys"]["developer"]) as dev:
        denied = await _session(dev, w["agent"]["id"], RM)
        await read_stream(dev, denied["id"], until=turn_done)
        events = await _events(dev, denied["id"])
        resolved = [e["data"] for e in events if e["type"] == "approval.resolved"]
        assert (
            len(resolved) == 1
            and resolved[0]["decision"] == "deny"
            and resolved[0]["by"] == "policy"
        )
        decisions = [e["data"] for e in events if e["type"] == "governance.decision"]
        assert decisions[0]["code"] == "tool_denied"
        assert (decisions[0]["policy_id"], decisions[0]["policy_version"]) == (policy["id"], 1)
        approvals = await ok(await dev.get(f"/v1/sessions/{denied['id']}/approvals"))
        assert approvals[0]["decided_by"] == "policy" and approvals[0]["policy_id"] == policy["id"]

        allowed = await _session(dev, w["agent"]["id"], BASH)
        await read_stream(dev, allowed["id"], until=turn_done)
        events = await _events(dev, allowed["id"])
        assert [e["data"]["decision"] for e in events if e["type"] == "approval.resolved"] == [
            "allow_once"
        ]
        outputs = [e["data"]["output"] for e in events if e["type"] == "tool.result"]
        assert outputs and outputs[0].strip() == "hi"


async def test_ask_rule_waits_for_named_approvers_and_expires_to_deny(
    governed: CorralServer, opencode_sim_url: str
) -> None:
    w = await _world(governed, opencode_sim_url)
    await _policy(governed, f"team:{w['team']['id']}", "tool",
                  {"effect": "ask", "tools": ["bash"], "approvers": {"roles": ["team_admin"]}})  # fmt: skip
    async with (
        governed.client(w["keys"]["developer"]) as dev,
        governed.client(w["keys"]["team_admin"]) as lead,
    ):
        session = await _session(dev, w["agent"]["id"], BASH)
        await read_stream(dev, session["id"], until=lambda f: f.event == "approval.requested")

        async def pending() -> Any:
            found = await ok(await lead.get("/v1/approvals", params={"status": "pending"}))
            return found if found and found[0]["decided_by"] == "ask" else None

        inbox = await _wait(pending)
        approval = inbox[0]
        assert approval["approvers"] == {"roles": ["team_admin"], "users": []}
        assert approval["expires_at"] is not None
        # The developer may write the session but is not a named approver.
        _problem(
            await dev.post(f"/v1/approvals/{approval['id']}", json={"decision": "allow_once"}),
            403,
            "not_an_approver",
        )
        answered = await ok(
            await lead.post(f"/v1/approvals/{approval['id']}", json={"decision": "allow_once"})
        )
        assert (
            answered["resolved_by"] == w["users"]["team_admin"]
            and answered["decided_by"] == "human"
        )
        await read_stream(dev, session["id"], until=turn_done)

    await _policy(governed, f"agent:{w['agent']['id']}", "tool",
                  {"effect": "ask", "tools": ["bash"], "ask_ttl_seconds": 0.5})  # fmt: skip
    async with governed.client(w["keys"]["developer"]) as dev:
        session = await _session(dev, w["agent"]["id"], BASH)
        await read_stream(dev, session["id"], until=turn_done, timeout=20)
        events = await _events(dev, session["id"])
        resolved = [e["data"] for e in events if e["type"] == "approval.resolved"]
        assert [(r["decision"], r["by"]) for r in resolved] == [("deny", "expiry")]


# -- runaway guards and the kill switch -------------------------------------------------------


async def test_tool_call_limit_stops_the_turn_with_its_reason(
    governed: CorralServer, opencode_sim_url: str
) -> None:
    w = await _world(governed, opencode_sim_url)
    await _policy(governed, f"agent:{w['agent']['id']}", "limits", {"max_tool_calls_per_turn": 0})
    async with governed.client(w["keys"]["developer"]) as dev:
        session = await _session(dev, w["agent"]["id"], '[[tool:read {"filePath":"hello.txt"}]]')
        frames = await read_stream(dev, session["id"], until=turn_done)
        assert events_of(frames)[-1].data["data"]["stop_reason"] == "tool_call_limit"
        done = await ok(await dev.get(f"/v1/sessions/{session['id']}"))
        assert done["state"] == "idle" and done["stop_reason"] == "tool_call_limit"


async def test_kill_switch_ends_a_fleet_slice_on_the_runtime(
    governed: CorralServer, opencode_sim_url: str
) -> None:
    w = await _world(governed, opencode_sim_url)
    async with governed.client(w["keys"]["developer"]) as dev:
        slow = [
            await _session(dev, w["agent"]["id"], "[[slow:20]] take your time") for _ in range(2)
        ]
        idle = await _session(dev, w["agent"]["id"])
        for s in slow:
            await read_stream(dev, s["id"], until=lambda f: f.event == "message.delta")
        # Developers may kill their own session but not a fleet slice.
        _problem(
            await dev.post("/v1/sessions/kill", json={"agent_id": w["agent"]["id"]}),
            403,
            "forbidden",
        )
    async with governed.client(w["keys"]["team_admin"]) as lead:
        report = await ok(
            await lead.post(
                "/v1/sessions/kill", json={"agent_id": w["agent"]["id"], "reason": "runaway"}
            )
        )
        assert sorted(report["killed"]) == sorted([*(s["id"] for s in slow), idle["id"]])
        assert report["failed"] == {}
        for s in slow:
            state = await ok(await lead.get(f"/v1/sessions/{s['id']}"))
            assert state["state"] == "terminated" and state["stop_reason"] == "killed"
            events = await _events(lead, s["id"])
            kill = [e["data"] for e in events if e["type"] == "governance.decision"]
            assert kill[-1]["code"] == "killed" and kill[-1]["reason"] == "runaway"
            assert kill[-1]["by"] == w["users"]["team_admin"]
            _problem(
                await lead.post(f"/v1/sessions/{s['id']}/messages", json={"text": "more"}),
                409,
                "session_busy",
            )
    # On the runtime itself: the simulator's sessions went idle (aborted), not still streaming.
    async with httpx.AsyncClient(base_url=opencode_sim_url, auth=("opencode", "s3cret-pw")) as sim:
        statuses = (await sim.get("/session/status")).json()
        for s in slow:
            native = (await ok(await governed.admin().get(f"/v1/sessions/{s['id']}")))[
                "native_session_id"
            ]
            assert statuses.get(native, {"type": "idle"})["type"] == "idle"


# -- the route x rule matrix --------------------------------------------------------------------


async def test_route_rule_matrix(governed: CorralServer, opencode_sim_url: str) -> None:
    """Every route that spends or acts honours each kind of rule."""
    w = await _world(governed, opencode_sim_url)
    agent, team = w["agent"]["id"], w["team"]["id"]
    async with governed.client(w["keys"]["developer"]) as dev:
        idle = (await _session(dev, agent))["id"]

        # model allowlist at the team: create and send refused
        model = await _policy(
            governed, f"team:{team}", "model", {"effect": "allow", "models": ["gpt-*"]}
        )
        _problem(await dev.post("/v1/sessions", json={"agent_id": agent}), 403, "model_not_allowed")
        _problem(
            await dev.post(f"/v1/sessions/{idle}/messages", json={"text": "x"}),
            403,
            "model_not_allowed",
        )
        async with governed.admin() as admin:
            await ok(await admin.delete(f"/v1/policies/{model['id']}"), 204)

        # runtime denylist by kind
        runtime = await _policy(
            governed, f"org:{w['org_id']}", "runtime", {"effect": "deny", "runtimes": ["opencode"]}
        )
        _problem(await dev.post("/v1/sessions", json={"agent_id": agent}), 403, "runtime_denied")
        _problem(
            await dev.post(f"/v1/sessions/{idle}/messages", json={"text": "x"}),
            403,
            "runtime_denied",
        )
        async with governed.admin() as admin:
            await ok(await admin.delete(f"/v1/policies/{runtime['id']}"), 204)

        # concurrency: one open session per agent (one is open already)
        cap = await _policy(governed, f"agent:{agent}", "limits", {"max_open_sessions": 1})
        _problem(await dev.post("/v1/sessions", json={"agent_id": agent}), 429, "limit_exceeded")
        async with governed.admin() as admin:
            await ok(await admin.delete(f"/v1/policies/{cap['id']}"), 204)

        # budget at zero: sending refused, creating an empty session still allowed
        async with governed.admin() as admin:
            zero = await ok(
                await admin.put("/v1/budgets", json={"scope": f"agent:{agent}", "limit_usd": 0})
            )
        _problem(
            await dev.post(f"/v1/sessions/{idle}/messages", json={"text": "x"}),
            402,
            "budget_exceeded",
        )
        async with governed.admin() as admin:
            await ok(await admin.delete(f"/v1/budgets/{zero['id']}"), 204)

        # rate per key: two requests a minute (calendar minutes: stay clear of a boundary)
        if (second := datetime.now(UTC).second) > 50:
            await asyncio.sleep(61 - second)
        dev_key_id = (await ok(await dev.get("/v1/keys")))["data"][0]["id"]
        rate = await _policy(governed, f"key:{dev_key_id}", "limits", {"requests_per_minute": 2})
        await _session(dev, agent)
        await _session(dev, agent)
        limited = await dev.post("/v1/sessions", json={"agent_id": agent})
        _problem(limited, 429, "rate_limited")
        assert limited.headers["retry-after"] == "60"
        async with governed.admin() as admin:
            await ok(await admin.delete(f"/v1/policies/{rate['id']}"), 204)

        # tool rule reaches a running session's prompt (tested in depth above); pause next
        running = await _session(dev, agent, BASH)
        await read_stream(dev, running["id"], until=lambda f: f.event == "approval.requested")
    async with governed.client(w["keys"]["team_admin"]) as lead:
        await ok(await lead.post(f"/v1/agents/{agent}/pause"))
    async with governed.client(w["keys"]["developer"]) as dev:
        _problem(await dev.post("/v1/sessions", json={"agent_id": agent}), 409, "agent_paused")
        _problem(
            await dev.post(f"/v1/sessions/{idle}/messages", json={"text": "x"}), 409, "agent_paused"
        )
    async with governed.client(w["keys"]["team_admin"]) as lead:
        await ok(await lead.post(f"/v1/agents/{agent}/resume"))

    # revocation: the key's next request fails, and its running session's next step is denied
    async with governed.client(w["keys"]["developer"]) as dev:
        second = await _session(
            dev, agent, '[[slow:1]] [[tool:bash {"command":"echo hi","description":"x"}]]'
        )
    async with governed.admin() as admin:
        await ok(await admin.post(f"/v1/keys/{dev_key_id}/revoke"))
    async with governed.client(w["keys"]["developer"]) as dev:
        _problem(await dev.get("/v1/sessions"), 401, "key_revoked")
    async with governed.admin() as admin:
        await read_stream(admin, second["id"], until=turn_done, timeout=20)
        decisions = [
            e["data"]
            for e in await _events(admin, second["id"])
            if e["type"] == "governance.decision"
        ]
        assert decisions and decisions[0]["code"] == "key_revoked"


async def test_256_concurrent_turns_against_five_dollars(
    governed: CorralServer, opencode_sim_url: str
) -> None:
    """One process, either database: the budget holds, each refusal names the scope, and once
    the turns end the budget's spend is exactly what the sessions cost, nothing reserved."""
    w = await _world(governed, opencode_sim_url)
    scope = f"agent:{w['agent']['id']}"
    async with governed.admin() as admin:
        budget = await ok(await admin.put("/v1/budgets", json={"scope": scope, "limit_usd": 5}))
    peak = 0.0
    burst_over = asyncio.Event()

    async def sample() -> None:  # what the ledger holds at any moment never passes the limit
        nonlocal peak
        async with governed.admin() as admin:
            while not burst_over.is_set():
                view = await ok(await admin.get(f"/v1/budgets/{budget['id']}"))
                peak = max(peak, view["spent_usd"] + view["reserved_usd"])
                await asyncio.sleep(0.02)

    async with governed.client(w["keys"]["developer"]) as dev:
        sampler = asyncio.ensure_future(sample())
        results = await asyncio.gather(
            *(
                dev.post(
                    "/v1/sessions", json={"agent_id": w["agent"]["id"], "input": f"n{i} [[slow:2]]"}
                )
                for i in range(256)
            )
        )
        burst_over.set()
        await sampler
        admitted = [r.json()["id"] for r in results if r.status_code == 201]
        refused = [r for r in results if r.status_code != 201]
        # $0.05 per turn in flight: 100 fit at once (more only as earlier turns settle).
        assert len(admitted) >= 100 and refused and len(admitted) + len(refused) == 256
        assert 0 < peak <= 5.0 + 1e-9, peak
        for response in refused:
            assert _problem(response, 402, "budget_exceeded")["scope"] == scope

        async def all_done() -> list[dict[str, Any]] | None:
            page = await ok(
                await dev.get("/v1/sessions", params={"agent_id": w["agent"]["id"], "limit": 200})
            )
            return page["data"] if all(s["state"] == "idle" for s in page["data"]) else None

        sessions = await _wait(all_done, timeout=60)
        assert len(sessions) == len(admitted)  # a refused first turn leaves no session
        cost = sum(s["cost_usd"] for s in sessions)

    async def settled() -> dict[str, Any] | None:
        async with governed.admin() as admin:
            view = await ok(await admin.get(f"/v1/budgets/{budget['id']}"))
        return view if view["reserved_usd"] == 0 and abs(view["spent_usd"] - cost) < 1e-6 else None

    try:
        view = await _wait(settled, timeout=20)
    except AssertionError:
        async with governed.admin() as admin:
            last = await ok(await admin.get(f"/v1/budgets/{budget['id']}"))
        raise AssertionError((last, cost, len(admitted))) from None
    assert 0 < view["spent_usd"] <= 5.0
