"""A real OpenCode server (the pinned npm release) whose model provider is Corral's gateway,
with a key minted for one Corral session: the runtime's own model calls pass through Corral's
policy and budget, are metered, and are attributed to that session. The provider is OpenCode's
``@ai-sdk/openai-compatible``, so this is the Vercel AI SDK's client against the gateway."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from corral.cli.demo import DEMO_MODEL, _ensure_gateway
from corral.runtimes.opencode.client import OpenCodeClient
from tests.gateway.conftest import Upstream
from tests.plugins.real_opencode import OpenCodeServer, opencode_config
from tests.support.corral import corral_settings, ok, running_corral
from tests.support.databases import sqlite_url
from tests.support.fleet import make_agent, make_runtime, make_team, make_user


class GatewayOpenCode(OpenCodeServer):
    """``opencode serve`` whose ``mock`` provider is Corral's gateway, with a Corral key."""

    def __init__(self, binary: Path, gateway_url: str, key: str, root: Path) -> None:
        super().__init__(binary, gateway_url, root)
        self.key = key

    def _prepare(self) -> dict[str, str]:
        env = super()._prepare()
        config = opencode_config(self.llm_base_url)
        config["provider"]["mock"]["options"]["apiKey"] = self.key
        env["OPENCODE_CONFIG_CONTENT"] = json.dumps(config)
        return env


def _prompt(text: str) -> dict[str, Any]:
    return {"parts": [{"type": "text", "text": f"[[usage:300,40]] {text}"}],
            "model": {"providerID": "mock", "modelID": DEMO_MODEL}}  # fmt: skip


def _texts(messages: list[dict[str, Any]]) -> str:
    return " ".join(
        part.get("text", "") for m in messages for part in m.get("parts", [])
        if part.get("type") == "text"
    )  # fmt: skip


async def test_a_real_opencodes_model_calls_are_governed_and_billed_to_the_session(
    opencode_binary: Path, opencode_sim_url: str, llm: Upstream, tmp_path: Path
) -> None:
    async with running_corral(corral_settings(sqlite_url(tmp_path), tmp_path)) as corral:
        admin = await corral.services.identity.authenticate(corral.admin_key)
        await _ensure_gateway(corral.services, admin, llm.url)  # mock-model -> the mock LLM
        await corral.services.prices.set_price(
            admin, DEMO_MODEL, input_usd_per_mtok=1.0, output_usd_per_mtok=2.0,
            cache_read_usd_per_mtok=None,
        )  # fmt: skip
        team = await make_team(corral, "runtimes")
        dev = await make_user(corral, team["id"], "developer", "oc@x.io")
        agent = await make_agent(
            corral, dev["key"], (await make_runtime(corral, opencode_sim_url))["id"]
        )
        async with corral.client(dev["key"]) as client:
            session = await ok(
                await client.post("/v1/sessions", json={"agent_id": agent["id"]}), 201
            )
            minted = await ok(await client.post(f"/v1/sessions/{session['id']}/gateway-key"), 201)

        server = GatewayOpenCode(opencode_binary, corral.url, minted["key"], tmp_path / "oc")
        url = await asyncio.to_thread(server.start)
        opencode = OpenCodeClient(url)
        try:
            native = await opencode.create_session("through corral")
            await opencode.json(
                "POST", f"/session/{native['id']}/message", json_body=_prompt("hello gateway")
            )
            answer = _texts(await opencode.messages(native["id"]))
            # A budget of $0 on the session's agent: the runtime's next model call is refused
            # before it leaves, and OpenCode ends its turn with the gateway's error.
            async with corral.admin() as http:
                await ok(await http.put("/v1/budgets", json={"scope": f"agent:{agent['id']}",
                                                             "limit_usd": 0}))  # fmt: skip
            refused = await opencode.json("POST", f"/session/{native['id']}/message",
                                          json_body=_prompt("over budget"))  # fmt: skip
        finally:
            await opencode.aclose()
            await asyncio.to_thread(server.stop)
        assert "budget_exceeded" in json.dumps(refused.get("info", {}).get("error")), refused
        assert "hello gateway" in answer  # the mock LLM's echo reached OpenCode through Corral

        await corral.services.gateway.recorder.flush()
        async with corral.admin() as http:
            calls = (await ok(await http.get("/v1/usage/calls",
                                             params={"session_id": session["id"]})))["data"]  # fmt: skip
            events = (await ok(await http.get(f"/v1/sessions/{session['id']}/events")))["data"]
        mine = [c for c in calls if c["input_tokens"] == 300]
        assert mine, calls
        call = mine[0]
        assert any(c["code"] == "budget_exceeded" and c["status"] == 402 for c in calls), calls
        assert (call["model"], call["outcome"], call["agent_id"], call["team_id"]) == (
            DEMO_MODEL, "ok", agent["id"], team["id"])  # fmt: skip
        assert call["stream"] is True and call["cost_usd"] > 0  # OpenCode streams; priced
        usage = [e["data"] for e in events if e["type"] == "usage"]
        assert any(u["cost_source"] == "gateway" and u["input_tokens"] == 300 for u in usage)
