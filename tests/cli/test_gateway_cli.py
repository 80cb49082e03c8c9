"""``corral upstreams``, ``models``, ``usage`` and ``sessions gateway-key`` as subprocesses."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from corral.sim._server import BackgroundServer
from corral.sim.mock_llm import create_app as create_mock_llm
from tests.cli.test_cli import Cli, Run
from tests.gateway.conftest import Upstream
from tests.support.corral import CorralServer


@pytest.fixture
def llm() -> Iterator[Upstream]:
    app = create_mock_llm()
    with BackgroundServer(app) as url:
        yield Upstream(url, app)


async def test_upstreams_models_and_usage(
    corral: CorralServer, llm: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOCK_UPSTREAM_KEY", "sk-from-env")
    transcript: list[Run] = []
    admin = Cli(corral.url, corral.admin_key, transcript)
    added = await admin.ok("upstreams", "add", "mock", "--kind", "openai", "--base-url",
                           f"{llm.url}/v1", "--api-key-env", "MOCK_UPSTREAM_KEY", "--json")  # fmt: skip
    assert added.json()["has_key"] is True and "sk-from-env" not in added.out
    listed = await admin.ok("upstreams", "list")
    assert "mock" in listed.out and "sk-from-env" not in listed.out
    await admin.ok("models", "set", "chat", "--target", "mock:mock-model", "--alias", "fast",
                   "--max-output-tokens", "256")  # fmt: skip
    models = await admin.ok("models", "list")
    assert "mock:mock-model" in models.out and "fast" in models.out
    bad = await admin("models", "set", "x", "--target", "no-colon")
    assert bad.code != 0

    client = openai.AsyncOpenAI(base_url=f"{corral.url}/v1", api_key=corral.admin_key)
    await client.chat.completions.create(model="fast",
                                         messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    assert llm.requests[-1]["max_completion_tokens"] == 256
    await corral.services.gateway.recorder.flush()
    usage = await admin.ok("usage", "--by", "model,outcome", "--json")
    (row,) = usage.json()["data"]
    assert (row["model"], row["outcome"], row["calls"]) == ("chat", "ok", 1)
    table = await admin.ok("usage", "--since", "1h")
    assert "chat" in table.out

    in_use = await admin("upstreams", "delete", "mock")
    assert in_use.code != 0 and "upstream_in_use" in (in_use.err + in_use.out)
    await admin.ok("models", "delete", "chat")
    await admin.ok("upstreams", "delete", "mock")
    assert "no upstreams" in (await admin.ok("upstreams", "list")).err
