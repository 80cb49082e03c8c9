"""``make run``'s demo routes ``mock-model`` through the gateway to the simulators' mock LLM."""

from __future__ import annotations

from pathlib import Path

import openai

from corral.cli.demo import DEMO_MODEL, _ensure_gateway
from corral.sim._server import BackgroundServer
from corral.sim.mock_llm import create_app as create_mock_llm
from tests.gateway.conftest import Upstream
from tests.support.corral import corral_settings, ok, running_corral
from tests.support.databases import sqlite_url


async def test_the_demo_route_answers_and_follows_the_mock_llm_to_its_new_port(
    tmp_path: Path, llm: Upstream
) -> None:
    async with running_corral(corral_settings(sqlite_url(tmp_path), tmp_path)) as corral:
        services = corral.services
        admin = await services.identity.authenticate(corral.admin_key)
        await _ensure_gateway(services, admin, "http://127.0.0.1:9")  # a first run's old port
        await _ensure_gateway(services, admin, llm.url)  # the next run: re-pointed, not doubled
        assert [u.name for u in await services.gateway_admin.list_upstreams(admin)] == ["mock-llm"]
        client = openai.AsyncOpenAI(base_url=f"{corral.url}/v1", api_key=corral.admin_key,
                                    max_retries=0)  # fmt: skip
        reply = await client.chat.completions.create(
            model=DEMO_MODEL, messages=[{"role": "user", "content": "[[usage:7,2]] hi"}]
        )
        assert reply.choices[0].message.content and reply.usage is not None
        assert reply.usage.prompt_tokens == 7

        with BackgroundServer(create_mock_llm()) as moved:
            await _ensure_gateway(services, admin, moved)
            again = await client.chat.completions.create(
                model=DEMO_MODEL, messages=[{"role": "user", "content": "again"}]
            )
            assert again.choices[0].message.content
        await services.gateway.recorder.flush()
        async with corral.admin() as http:
            usage = await ok(await http.get("/v1/usage", params={"group_by": "model"}))
        (row,) = usage["data"]
        assert row["model"] == DEMO_MODEL and row["calls"] == 2
