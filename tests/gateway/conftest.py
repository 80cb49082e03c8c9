"""Gateway fixtures: a scripted mock LLM upstream, and a Corral routing to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from corral.sim._server import BackgroundServer
from corral.sim.mock_llm import create_app as create_mock_llm
from tests.support.corral import CorralServer, corral_settings, ok, running_corral
from tests.support.databases import sqlite_url


@dataclass
class Upstream:
    url: str
    app: Any

    @property
    def calls(self) -> list[tuple[str, Any]]:
        return list(getattr(self.app.state, "calls", []))

    @property
    def requests(self) -> list[Any]:
        return list(self.app.state.requests)

    @property
    def disconnects(self) -> int:
        return int(self.app.state.disconnects)


@pytest.fixture
def llm() -> Iterator[Upstream]:
    app = create_mock_llm()
    with BackgroundServer(app) as url:
        yield Upstream(url, app)


@dataclass
class GatewaySetup:
    corral: CorralServer
    llm: Upstream
    key: str

    @property
    def base(self) -> str:
        return self.corral.url

    def openai(self, key: str | None = None, **kwargs: Any) -> Any:
        import openai

        return openai.AsyncOpenAI(base_url=f"{self.base}/v1", api_key=key or self.key,
                                  max_retries=0, **kwargs)  # fmt: skip

    def anthropic(self, key: str | None = None, **kwargs: Any) -> Any:
        import anthropic

        return anthropic.AsyncAnthropic(base_url=self.base, api_key=key or self.key,
                                        max_retries=0, **kwargs)  # fmt: skip


# fmt: off
async def configure(corral: CorralServer, llm_url: str) -> None:
    """Two upstreams on the mock (OpenAI and Anthropic wire) and two model routes."""
    async with corral.admin() as admin:
        await ok(await admin.post("/v1/gateway/upstreams", json={
            "name": "mock", "kind": "openai", "base_url": f"{llm_url}/v1", "api_key": "sk-up"}), 201)
        await ok(await admin.post("/v1/gateway/upstreams", json={
            "name": "mock-anthropic", "kind": "anthropic", "base_url": llm_url,
            "api_key": "sk-ant-up"}), 201)
        await ok(await admin.post("/v1/gateway/models", json={
            "name": "gpt-4o-mini", "targets": [{"upstream": "mock", "model": "mock-model"}],
            "aliases": ["fast"]}), 201)
        await ok(await admin.post("/v1/gateway/models", json={
            "name": "claude-haiku-4-5",
            "targets": [{"upstream": "mock-anthropic", "model": "claude-haiku-4-5"}]}), 201)
# fmt: on


async def _setup(database_url: str, tmp_path: Path, llm: Upstream) -> AsyncIterator[GatewaySetup]:
    async with running_corral(corral_settings(database_url, tmp_path)) as corral:
        await configure(corral, llm.url)
        yield GatewaySetup(corral, llm, corral.admin_key)


@pytest.fixture
async def gw(tmp_path: Path, llm: Upstream) -> AsyncIterator[GatewaySetup]:
    """On SQLite (the common case); tests that must hold on both use ``gw_any``."""
    async for setup in _setup(sqlite_url(tmp_path), tmp_path, llm):
        yield setup


@pytest.fixture
async def gw_any(database_url: str, tmp_path: Path, llm: Upstream) -> AsyncIterator[GatewaySetup]:
    async for setup in _setup(database_url, tmp_path, llm):
        yield setup
