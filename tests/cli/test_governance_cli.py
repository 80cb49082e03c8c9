"""``corral policies``, ``budgets`` and ``prices`` run as subprocesses against a real Corral."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.cli.test_cli import Cli, Run
from tests.support.corral import CorralServer, ok
from tests.support.fleet import make_runtime, make_user


async def _platform(corral: CorralServer) -> tuple[Cli, dict[str, str]]:
    """An admin CLI, plus the ids of team 'platform', its agent 'helper' and the org."""
    transcript: list[Run] = []
    admin = Cli(corral.url, corral.admin_key, transcript)
    team = (await admin.ok("teams", "create", "platform", "--json")).json()
    runtime = await make_runtime(corral, "http://127.0.0.1:9")
    async with corral.admin() as http:
        body = {"name": "helper", "runtime_id": runtime["id"], "team_id": team["id"]}
        agent = await ok(await http.post("/v1/agents", json=body), 201)
        org = (await ok(await http.get("/v1/me")))["org_id"]
    return admin, {"team": team["id"], "agent": agent["id"], "org": org}


async def test_policies(corral: CorralServer, tmp_path: Path) -> None:
    admin, ids = await _platform(corral)
    team = f"team:{ids['team']}"
    add = ("policies", "add", "--json")
    deny, ask, models, runtimes, limits = await asyncio.gather(
        admin.ok(
            *add, "--scope", "team:platform", "--kind", "tool", "--effect", "deny",
            "--tool", "bash", "--tool", "mcp__github__*", "--server", "github",
            "--arg-prefix", "command=rm ", "--description", "no rm",
        ),
        admin.ok(
            *add, "--scope", "agent:helper", "--kind", "tool", "--effect", "ask", "--tool", "bash",
            "--approver-role", "team_admin", "--approver-user", "usr_x", "--arg-glob", "path=/etc/*",
        ),
        admin.ok(*add, "--scope", "org", "--kind", "model", "--allow", "gpt-4o*", "--allow", "o3"),
        admin.ok(*add, "--scope", team, "--kind", "runtime", "--deny", "opencode"),
        admin.ok(
            *add, "--scope", "team:platform", "--kind", "limits",
            "--set", "max_turns_per_session=20", "--set", "max_session_cost_usd=2.5",
        ),
    )  # fmt: skip
    assert deny.json()["scope"] == team and deny.json()["description"] == "no rm"
    assert deny.json()["body"] == {
        "effect": "deny",
        "tools": ["bash", "mcp__github__*"],
        "servers": ["github"],
        "arguments": {"command": {"prefix": "rm "}},
    }
    assert ask.json()["scope"] == f"agent:{ids['agent']}"
    assert ask.json()["body"] == {
        "effect": "ask",
        "tools": ["bash"],
        "arguments": {"path": {"glob": "/etc/*"}},
        "approvers": {"roles": ["team_admin"], "users": ["usr_x"]},
    }
    assert models.json()["scope"] == f"org:{ids['org']}"
    assert models.json()["body"] == {"effect": "allow", "models": ["gpt-4o*", "o3"]}
    assert runtimes.json()["body"] == {"effect": "deny", "runtimes": ["opencode"]}
    assert limits.json()["body"] == {"max_turns_per_session": 20, "max_session_cost_usd": 2.5}

    rule = {"effect": "allow", "servers": ["docs"]}
    rule_file = tmp_path / "rule.json"
    rule_file.write_text(json.dumps(rule))
    from_body, from_file, both, no_effect, bad_rule, stray, server_refuses = await asyncio.gather(
        admin.ok(*add, "--scope", team, "--kind", "tool", "--body", json.dumps(rule), "--disabled"),
        admin.ok(*add, "--scope", team, "--kind", "tool", "--file", str(rule_file)),
        admin("policies", "add", "--scope", team, "--kind", "model", "--allow", "a", "--deny", "b"),
        admin("policies", "add", "--scope", team, "--kind", "tool", "--tool", "bash"),
        admin("policies", "add", "--scope", team, "--kind", "tool", "--body", "{", "--effect", "deny"),
        admin("policies", "add", "--scope", team, "--kind", "model", "--allow", "a", "--tool", "x"),
        admin("policies", "add", "--scope", team, "--kind", "limits", "--set", "bogus=1"),
    )  # fmt: skip
    assert from_body.json()["body"] == rule and from_body.json()["enabled"] is False
    assert from_file.json()["body"] == rule and from_file.json()["enabled"] is True
    assert (both.code, no_effect.code, bad_rule.code, stray.code) == (2, 2, 2, 2)
    assert "--tool does not apply to model rules" in stray.err
    assert server_refuses.code == 1 and "error [invalid_policy]" in server_refuses.err

    listed, only_limits, on_team, shown = await asyncio.gather(
        admin.ok("policies", "list"),
        admin.ok("policies", "list", "--kind", "limits", "--json"),
        admin.ok("policies", "list", "--scope", "team:platform", "--json"),
        admin.ok("policies", "show", deny.json()["id"]),
    )
    assert all(p.json()["id"] in listed.out for p in (deny, ask, models, runtimes, limits))
    assert [p["id"] for p in only_limits.json()["data"]] == [limits.json()["id"]]
    assert len(on_team.json()["data"]) == 5  # deny, runtimes, limits, from_body, from_file
    assert "no rm" in shown.out and '"prefix": "rm "' in shown.out and team in shown.out

    pid = deny.json()["id"]
    v2 = (await admin.ok("policies", "update", pid, "--disable", "--version", "1", "--json")).json()
    assert (v2["version"], v2["enabled"]) == (2, False)
    stale = await admin("policies", "update", pid, "--enable", "--version", "1")
    assert stale.code == 1 and stale.err.startswith("error [version_mismatch]: ")
    v3 = await admin.ok("policies", "update", pid, "--file", str(rule_file), "--enable")
    assert v3.out.strip() == f"Updated policy {pid}: now version 3"
    nothing = await admin("policies", "update", pid)
    assert nothing.code == 2

    history = (await admin.ok("policies", "history", pid, "--json")).json()["data"]
    assert [(v["version"], v["enabled"], v["body"] == rule) for v in history] == [
        (1, True, False),
        (2, False, False),
        (3, True, True),
    ]
    deleted = await admin.ok("policies", "delete", pid)
    assert deleted.out.strip() == f"Deleted policy {pid}"
    gone, table = await asyncio.gather(
        admin("policies", "show", pid), admin.ok("policies", "history", pid)
    )
    assert gone.code == 1 and "error [not_found]" in gone.err
    assert [line.split()[:3] for line in table.out.splitlines()[1:]] == [
        ["1", "yes", "no"],
        ["2", "no", "no"],
        ["3", "yes", "no"],
        ["4", "yes", "yes"],
    ]

    dev = await make_user(corral, ids["team"], "developer", "dev@x.io")
    refused = await Cli(corral.url, dev["key"], [])(
        "policies", "add", "--scope", team, "--kind", "model", "--deny", "gpt-5*"
    )
    assert refused.code == 1 and refused.err.startswith("error [forbidden]: ")


async def test_budgets_and_prices(corral: CorralServer) -> None:
    admin, ids = await _platform(corral)
    team, org = f"team:{ids['team']}", f"org:{ids['org']}"
    daily, total = await asyncio.gather(
        admin.ok(
            "budgets", "set", "team:platform", "25.5", "--period", "daily",
            "--tz", "Europe/Paris", "--soft", "80", "--json",
        ),
        admin.ok("budgets", "set", "org", "100"),
    )  # fmt: skip
    budget = daily.json()
    assert (budget["scope"], budget["period"], budget["timezone"]) == (
        team,
        "daily",
        "Europe/Paris",
    )
    assert (budget["limit_usd"], budget["remaining_usd"], budget["soft_percent"]) == (
        25.5,
        25.5,
        80,
    )
    assert (
        total.out.startswith("Budget bud_") and f"$100.00 total on {org} (version 1)" in total.out
    )

    replaced = (await admin.ok("budgets", "set", team, "30", "--period", "daily", "--json")).json()
    assert replaced["id"] == budget["id"] and replaced["version"] == 2
    assert (replaced["limit_usd"], replaced["timezone"]) == (30, "UTC")
    listed, on_team, shown, bad_tz, bad_period, negative = await asyncio.gather(
        admin.ok("budgets", "list"),
        admin.ok("budgets", "list", "--scope", "team:platform", "--json"),
        admin.ok("budgets", "show", budget["id"]),
        admin("budgets", "set", team, "5", "--tz", "Mars/Olympus"),
        admin("budgets", "set", team, "5", "--period", "yearly"),
        admin("budgets", "set", team, "-5"),
    )
    rows = {line.split()[0]: line.split() for line in listed.out.splitlines()[1:]}
    assert rows[budget["id"]][1:5] == [team, "daily", "$30.00", "$0.00"]
    assert [b["id"] for b in on_team.json()["data"]] == [budget["id"]]
    assert "remaining" in shown.out and "$30.00" in shown.out and "daily (UTC)" in shown.out
    assert bad_tz.code == 1 and "error [invalid_timezone]" in bad_tz.err
    assert bad_period.code == 1 and "error [invalid_period]" in bad_period.err
    assert negative.code == 2
    assert (await admin.ok("budgets", "delete", budget["id"])).out.strip().endswith(budget["id"])
    missing = await admin("budgets", "show", budget["id"])
    assert missing.code == 1 and "error [not_found]" in missing.err

    shipped = await admin.ok("prices", "list")
    gpt4o = next(line.split() for line in shipped.out.splitlines() if line.startswith("gpt-4o "))
    assert gpt4o == ["gpt-4o", "$2.5", "$10", "$1.25", "shipped"]
    custom = (
        await admin.ok(
            "prices", "set", "acme/model-x", "--input", "0.5", "--output", "1",
            "--cache-read", "0.05", "--json",
        )
    ).json()  # fmt: skip
    assert custom == {
        "model": "acme/model-x", "input_usd_per_mtok": 0.5, "output_usd_per_mtok": 1.0,
        "cache_read_usd_per_mtok": 0.05, "source": "org",
    }  # fmt: skip
    override = await admin.ok("prices", "set", "gpt-4o", "--input", "3", "--output", "12")
    assert override.out.strip() == "Priced gpt-4o: $3 in, $12 out per million tokens"
    prices = {p["model"]: p for p in (await admin.ok("prices", "list", "--json")).json()["data"]}
    assert prices["gpt-4o"]["source"] == "org" and prices["acme/model-x"] == custom
    await admin.ok("prices", "delete", "acme/model-x")
    again, after = await asyncio.gather(
        admin("prices", "delete", "acme/model-x"), admin.ok("prices", "list", "--json")
    )
    assert again.code == 1 and "error [not_found]" in again.err
    models = {p["model"] for p in after.json()["data"]}
    assert "acme/model-x" not in models and "gpt-4o" in models
