"""Governance administration over HTTP: policies (versions), budgets and model prices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from corral.domain.ids import new_id
from corral.domain.records import Org, Team
from corral.store import identity as identity_repo
from tests.support.corral import CorralServer, ok
from tests.support.fleet import make_agent, make_runtime, make_team, make_user

TOOL_DENY = {"effect": "deny", "tools": ["bash"], "arguments": {"command": {"prefix": "rm "}}}


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


async def expect(client: httpx.AsyncClient, cases: list[tuple[str, str, Any, int, str]]) -> None:
    """Each (method, path, JSON body or GET params, status, code) is refused as stated."""
    for method, path, data, status, code in cases:
        sent = {"params": data} if method == "GET" else {"json": data}
        problem(await client.request(method, path, **sent), status, code)


async def _other_org_team(corral: CorralServer) -> str:
    """A team of a second organization, made below the API (which serves one org per key)."""
    now = datetime.now(UTC)
    org = Org(new_id("org"), "elsewhere", now)
    team = Team(new_id("team"), org.id, "theirs", now)
    async with corral.services.db.write() as conn:
        await identity_repo.insert_org(conn, org)
        await identity_repo.insert_team(conn, team)
    return team.id


async def test_policy_lifecycle_and_versions(corral: CorralServer) -> None:
    team = await make_team(corral, "platform")
    scope = f"team:{team['id']}"
    async with corral.admin() as admin:
        me = await ok(await admin.get("/v1/me"))
        created = await ok(
            await admin.post(
                "/v1/policies",
                json={"scope": scope, "kind": "tool", "body": TOOL_DENY, "description": "no rm"},
            ),
            201,
        )
        assert created["id"].startswith("pol_") and created["scope"] == scope
        assert (created["kind"], created["body"], created["version"]) == ("tool", TOOL_DENY, 1)
        assert created["enabled"] is True and created["description"] == "no rm"
        assert created["created_by"] == me["user_id"]
        limits = await ok(
            await admin.post(
                "/v1/policies",
                json={
                    "scope": f"org:{me['org_id']}",
                    "kind": "limits",
                    "body": {"max_turns_per_session": 20},
                    "enabled": False,
                },
            ),
            201,
        )
        assert limits["enabled"] is False and limits["description"] is None

        listed = await ok(await admin.get("/v1/policies"))
        assert [p["id"] for p in listed["data"]] == [limits["id"], created["id"]]
        assert listed["next_cursor"] is None
        tools = await ok(await admin.get("/v1/policies", params={"kind": "tool"}))
        assert [p["id"] for p in tools["data"]] == [created["id"]]
        on_team = await ok(await admin.get("/v1/policies", params={"scope": scope}))
        assert [p["id"] for p in on_team["data"]] == [created["id"]]
        first = await ok(await admin.get("/v1/policies", params={"limit": 1}))
        assert len(first["data"]) == 1 and first["next_cursor"]
        assert await ok(await admin.get(f"/v1/policies/{created['id']}")) == created

        path = f"/v1/policies/{created['id']}"
        ask = {"effect": "ask", "tools": ["bash"], "approvers": {"roles": ["team_admin"]}}
        v2 = await ok(await admin.patch(path, json={"body": ask, "version": 1}))
        assert (v2["version"], v2["body"], v2["enabled"]) == (2, ask, True)
        assert v2["created_by"] == me["user_id"] and v2["description"] == "no rm"
        v3 = await ok(await admin.patch(path, json={"enabled": False, "description": "later"}))
        assert (v3["version"], v3["enabled"], v3["body"]) == (3, False, ask)
        assert v3["description"] == "later" and v3["created_at"] == created["created_at"]
        stale = problem(
            await admin.patch(path, json={"enabled": True, "version": 2}), 409, "version_mismatch"
        )
        assert "version 3" in stale["detail"]
        problem(await admin.patch(path, json={}), 422, "empty_update")
        problem(await admin.patch(path, json={"body": {"effect": "nope"}}), 422, "invalid_policy")
        assert (await ok(await admin.get(path)))["version"] == 3  # refused edits change nothing

        history = await ok(await admin.get(f"{path}/versions"))
        assert [(v["version"], v["enabled"], v["deleted"]) for v in history["data"]] == [
            (1, True, False),
            (2, True, False),
            (3, False, False),
        ]
        assert history["data"][0]["body"] == TOOL_DENY and history["data"][1]["body"] == ask
        assert {v["changed_by"] for v in history["data"]} == {me["user_id"]}

        assert (await admin.delete(path)).status_code == 204
        problem(await admin.get(path), 404, "not_found")
        problem(await admin.delete(path), 404, "not_found")
        problem(await admin.patch(path, json={"enabled": True}), 404, "not_found")
        after = await ok(await admin.get(f"{path}/versions"))
        assert [(v["version"], v["deleted"]) for v in after["data"]][-1] == (4, True)
        problem(await admin.get("/v1/policies/pol_nope/versions"), 404, "not_found")
        remaining = await ok(await admin.get("/v1/policies"))
        assert [p["id"] for p in remaining["data"]] == [limits["id"]]


async def test_invalid_policies_and_scopes(corral: CorralServer) -> None:
    team = await make_team(corral, "platform")
    elsewhere = await _other_org_team(corral)
    scope = f"team:{team['id']}"

    def policy(kind: str, body: Any, where: str = scope) -> dict[str, Any]:
        return {"scope": where, "kind": kind, "body": body}

    async with corral.admin() as admin:
        invalid = [
            policy("tool", {"effect": "maybe", "tools": ["bash"]}),
            policy("tool", {"effect": "deny", "tools": []}),
            policy("tool", {"effect": "deny"}),
            policy("tool", {"effect": "deny", "tools": ["x"], "arguments": {"c": {"regex": "("}}}),
            policy("tool", {"effect": "ask", "tools": ["x"], "ask_ttl_seconds": 0}),
            policy("limits", {"max_turns": 3}),
            policy("limits", {"max_turns_per_session": -1}),
            policy("limits", {}),
            policy("model", {"effect": "allow"}),
            policy("runtime", {"effect": "maybe", "runtimes": ["opencode"]}),
            policy("galaxy", {"effect": "deny", "tools": ["bash"]}),
        ]
        await expect(admin, [("POST", "/v1/policies", b, 422, "invalid_policy") for b in invalid])
        good = {"effect": "allow", "models": ["gpt-4o*"]}
        other_org = f"org:{new_id('org')}"
        await expect(
            admin,
            [
                *(
                    ("POST", "/v1/policies", policy("model", good, where), 422, "invalid_scope")
                    for where in ("galaxy:x", "team", f"user:{new_id('user')}")
                ),
                *(
                    ("POST", "/v1/policies", policy("model", good, where), 404, "scope_not_found")
                    for where in (f"team:{new_id('team')}", f"team:{elsewhere}", other_org)
                ),
                ("POST", "/v1/policies", {**policy("model", good), "x": 1}, 422, "validation"),
                ("POST", "/v1/policies", {"scope": scope, "kind": "model"}, 422, "validation"),
                ("GET", "/v1/policies", {"scope": "nope"}, 422, "invalid_scope"),
                ("GET", "/v1/policies", {"scope": f"team:{elsewhere}"}, 404, "scope_not_found"),
            ],
        )
        assert (await ok(await admin.get("/v1/policies")))["data"] == []
        # Every body format the reference documents is accepted.
        valid = [
            policy("tool", {"effect": "allow", "servers": ["gh"], "arguments": {"path": "src/*"}}),
            policy("model", {"effect": "deny", "models": ["o1*", "gpt-?"]}),
            policy("runtime", {"runtimes": ["opencode"]}),
            policy("limits", {"requests_per_minute": 60, "max_session_cost_usd": 2.5}),
        ]
        for body in valid:
            await ok(await admin.post("/v1/policies", json=body), 201)
        assert len((await ok(await admin.get("/v1/policies")))["data"]) == 4


async def test_who_may_read_and_write_governance(corral: CorralServer) -> None:
    mine, theirs = await make_team(corral, "mine"), await make_team(corral, "theirs")
    lead = await make_user(corral, mine["id"], "team_admin", "lead@x.io")
    dev = await make_user(corral, mine["id"], "developer", "dev@x.io")
    viewer = await make_user(corral, mine["id"], "viewer", "view@x.io")
    other_dev = await make_user(corral, theirs["id"], "developer", "other@x.io")
    runtime = await make_runtime(corral, "http://127.0.0.1:9")
    my_agent = await make_agent(corral, dev["key"], runtime["id"])
    their_agent = await make_agent(corral, other_dev["key"], runtime["id"])
    my_team, their_team = f"team:{mine['id']}", f"team:{theirs['id']}"

    def deny(scope: str) -> dict[str, Any]:
        return {"scope": scope, "kind": "tool", "body": TOOL_DENY}

    def budget(scope: str) -> dict[str, Any]:
        return {"scope": scope, "limit_usd": 10}

    async with corral.admin() as admin:
        admin_me = await ok(await admin.get("/v1/me"))
        org = f"org:{admin_me['org_id']}"
        org_policy = await ok(await admin.post("/v1/policies", json=deny(org)), 201)
        their_policy = await ok(await admin.post("/v1/policies", json=deny(their_team)), 201)
        await ok(await admin.put("/v1/budgets", json=budget(their_team)))
    org_path, their_path = f"/v1/policies/{org_policy['id']}", f"/v1/policies/{their_policy['id']}"
    price = {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1}

    async with corral.client(dev["key"]) as client:
        await expect(
            client,
            [
                *(
                    case
                    for scope in (my_team, f"agent:{my_agent['id']}", org)
                    for case in (
                        ("POST", "/v1/policies", deny(scope), 403, "forbidden"),
                        ("PUT", "/v1/budgets", budget(scope), 403, "forbidden"),
                    )
                ),
                ("PUT", "/v1/prices/gpt-4o", price, 403, "forbidden"),
                ("DELETE", org_path, None, 403, "forbidden"),
            ],
        )
        assert len((await ok(await client.get("/v1/policies")))["data"]) == 1  # the org's

    async with corral.client(lead["key"]) as client:
        team_policy = await ok(await client.post("/v1/policies", json=deny(my_team)), 201)
        agent_scope = f"agent:{my_agent['id']}"
        agent_policy = await ok(await client.post("/v1/policies", json=deny(agent_scope)), 201)
        key_scope = f"key:{dev['key_id']}"
        key_policy = await ok(await client.post("/v1/policies", json=deny(key_scope)), 201)
        my_budget = await ok(await client.put("/v1/budgets", json=budget(my_team)))
        await expect(
            client,
            [
                ("POST", "/v1/policies", deny(org), 403, "forbidden"),
                ("PUT", "/v1/budgets", budget(org), 403, "forbidden"),
                *(
                    case
                    for scope in (their_team, f"agent:{their_agent['id']}")
                    for case in (
                        ("POST", "/v1/policies", deny(scope), 404, "not_found"),
                        ("PUT", "/v1/budgets", budget(scope), 404, "not_found"),
                    )
                ),
                ("PATCH", org_path, {"enabled": False}, 403, "forbidden"),
                ("GET", their_path, None, 404, "not_found"),
                ("PUT", "/v1/prices/gpt-4o", price, 403, "forbidden"),
            ],
        )
        patch = {"enabled": False}
        patched = await ok(await client.patch(f"/v1/policies/{team_policy['id']}", json=patch))
        assert patched["version"] == 2 and patched["created_by"] == lead["user"]["id"]

    async with corral.client(viewer["key"]) as client:
        seen = await ok(await client.get("/v1/policies"))
        # The developer's key policy is on another user's key: readable, but not in the listing.
        expected = {org_policy["id"], team_policy["id"], agent_policy["id"]}
        assert {p["id"] for p in seen["data"]} == expected
        shown = await ok(await client.get(f"/v1/policies/{key_policy['id']}"))
        assert shown["scope"] == key_scope
        assert (await ok(await client.get(org_path)))["id"] == org_policy["id"]
        budgets = await ok(await client.get("/v1/budgets"))
        assert [b["id"] for b in budgets["data"]] == [my_budget["id"]]
        assert len((await ok(await client.get("/v1/prices")))["data"]) > 10
        await expect(
            client,
            [
                ("GET", their_path, None, 404, "not_found"),
                ("GET", f"{their_path}/versions", None, 404, "not_found"),
                ("GET", "/v1/budgets", {"scope": their_team}, 404, "not_found"),
                ("POST", "/v1/policies", deny(my_team), 403, "forbidden"),
                ("DELETE", f"/v1/budgets/{my_budget['id']}", None, 403, "forbidden"),
            ],
        )

    # An edit by someone else keeps the author and records who changed it.
    async with corral.admin() as admin:
        path = f"/v1/policies/{team_policy['id']}"
        edited = await ok(await admin.patch(path, json={"description": "reviewed"}))
        assert edited["version"] == 3 and edited["created_by"] == lead["user"]["id"]
        assert (await ok(await admin.get(path)))["created_by"] == lead["user"]["id"]
        history = (await ok(await admin.get(f"{path}/versions")))["data"]
        changers = [v["changed_by"] for v in history]
        assert changers == [lead["user"]["id"], lead["user"]["id"], admin_me["user_id"]]


async def test_budgets_set_replace_and_views(corral: CorralServer) -> None:
    team = await make_team(corral, "platform")
    scope = f"team:{team['id']}"
    async with corral.admin() as admin:
        daily = await ok(
            await admin.put(
                "/v1/budgets",
                json={"scope": scope, "limit_usd": 25.5, "period": "daily",
                      "timezone": "Europe/Paris", "soft_percent": 80},
            )
        )  # fmt: skip
        assert daily["id"].startswith("bud_") and daily["scope"] == scope
        assert (daily["period"], daily["timezone"], daily["soft_percent"]) == (
            "daily",
            "Europe/Paris",
            80,
        )
        assert (daily["limit_usd"], daily["spent_usd"], daily["reserved_usd"]) == (25.5, 0, 0)
        assert daily["remaining_usd"] == 25.5 and daily["soft_exceeded"] is False
        assert daily["version"] == 1
        start = datetime.fromisoformat(daily["window_start"])
        end = datetime.fromisoformat(daily["window_end"])
        assert start <= datetime.now(UTC) < end
        assert timedelta(hours=23) <= end - start <= timedelta(hours=25)
        assert start.astimezone(UTC).hour in (22, 23)  # local midnight in Paris

        replaced = await ok(
            await admin.put(
                "/v1/budgets", json={"scope": scope, "limit_usd": 30, "period": "daily"}
            )
        )
        assert replaced["id"] == daily["id"] and replaced["version"] == 2
        assert (replaced["limit_usd"], replaced["remaining_usd"]) == (30, 30)
        assert (replaced["timezone"], replaced["soft_percent"]) == ("UTC", None)
        assert replaced["created_at"] == daily["created_at"]
        total = await ok(await admin.put("/v1/budgets", json={"scope": scope, "limit_usd": 100}))
        assert total["id"] != daily["id"] and total["period"] == "total" and total["version"] == 1
        assert total["window_end"] is None and total["window_start"].startswith("1970-01-01")

        listed = await ok(await admin.get("/v1/budgets", params={"scope": scope}))
        assert [(b["id"], b["version"]) for b in listed["data"]] == [
            (total["id"], 1),
            (daily["id"], 2),
        ]
        assert await ok(await admin.get(f"/v1/budgets/{daily['id']}")) == replaced

        user = await make_user(corral, team["id"], "developer", "d@x.io")
        weekly = await ok(
            await admin.put(
                "/v1/budgets",
                json={"scope": f"user:{user['user']['id']}", "limit_usd": 0, "period": "weekly"},
            )
        )
        assert weekly["remaining_usd"] == 0
        assert datetime.fromisoformat(weekly["window_start"]).weekday() == 0
        assert len((await ok(await admin.get("/v1/budgets")))["data"]) == 3

        bad = {"scope": scope, "limit_usd": 1}
        await expect(
            admin,
            [
                ("PUT", "/v1/budgets", {**bad, "timezone": "Mars/Olympus"}, 422, "invalid_timezone"),
                ("PUT", "/v1/budgets", {**bad, "period": "minute"}, 422, "invalid_period"),
                ("PUT", "/v1/budgets", {**bad, "period": "yearly"}, 422, "invalid_period"),
                ("PUT", "/v1/budgets", {**bad, "scope": "galaxy:1"}, 422, "invalid_scope"),
                ("PUT", "/v1/budgets", {**bad, "scope": f"team:{new_id('team')}"}, 404,
                 "scope_not_found"),
                ("PUT", "/v1/budgets", {**bad, "limit_usd": -1}, 422, "validation"),
                ("PUT", "/v1/budgets", {**bad, "soft_percent": 0}, 422, "validation"),
                ("PUT", "/v1/budgets", {**bad, "soft_percent": 101}, 422, "validation"),
            ],
        )  # fmt: skip

        assert (await admin.delete(f"/v1/budgets/{daily['id']}")).status_code == 204
        problem(await admin.get(f"/v1/budgets/{daily['id']}"), 404, "not_found")
        problem(await admin.delete(f"/v1/budgets/{daily['id']}"), 404, "not_found")
        left = await ok(await admin.get("/v1/budgets", params={"scope": scope}))
        assert [b["id"] for b in left["data"]] == [total["id"]]
        again = await ok(
            await admin.put("/v1/budgets", json={"scope": scope, "limit_usd": 5, "period": "daily"})
        )
        assert again["id"] != daily["id"] and again["version"] == 1


async def test_model_prices(corral: CorralServer) -> None:
    async with corral.admin() as admin:
        shipped = {p["model"]: p for p in (await ok(await admin.get("/v1/prices")))["data"]}
        assert shipped["gpt-4o"] == {
            "model": "gpt-4o", "input_usd_per_mtok": 2.5, "output_usd_per_mtok": 10.0,
            "cache_read_usd_per_mtok": 1.25, "source": "shipped",
        }  # fmt: skip
        assert {p["source"] for p in shipped.values()} == {"shipped"}

        own = await ok(
            await admin.put(
                "/v1/prices/gpt-4o", json={"input_usd_per_mtok": 3, "output_usd_per_mtok": 12.5}
            )
        )
        assert own == {
            "model": "gpt-4o", "input_usd_per_mtok": 3.0, "output_usd_per_mtok": 12.5,
            "cache_read_usd_per_mtok": None, "source": "org",
        }  # fmt: skip
        body = {
            "input_usd_per_mtok": 0.5,
            "output_usd_per_mtok": 1,
            "cache_read_usd_per_mtok": 0.05,
        }
        custom = await ok(await admin.put("/v1/prices/acme/model-x", json=body))
        assert custom["model"] == "acme/model-x" and custom["cache_read_usd_per_mtok"] == 0.05

        prices = (await ok(await admin.get("/v1/prices")))["data"]
        assert [p["model"] for p in prices] == sorted(p["model"] for p in prices)
        by_model = {p["model"]: p for p in prices}
        assert len(prices) == len(shipped) + 1
        assert by_model["gpt-4o"] == own and by_model["acme/model-x"]["source"] == "org"
        assert by_model["gpt-4o-mini"] == shipped["gpt-4o-mini"]

        await expect(
            admin,
            [
                ("PUT", "/v1/prices/x", {"input_usd_per_mtok": -1, "output_usd_per_mtok": 1}, 422,
                 "validation"),
                ("PUT", "/v1/prices/x", {"input_usd_per_mtok": 1}, 422, "validation"),
            ],
        )  # fmt: skip
        assert (await admin.delete("/v1/prices/gpt-4o")).status_code == 204
        assert (await admin.delete("/v1/prices/acme/model-x")).status_code == 204
        problem(await admin.delete("/v1/prices/gpt-4o"), 404, "not_found")
        problem(await admin.delete("/v1/prices/never-priced"), 404, "not_found")
        restored = {p["model"]: p for p in (await ok(await admin.get("/v1/prices")))["data"]}
        assert restored == shipped
