"""Shared fixtures: databases (SQLite and PostgreSQL), simulators, a Corral server on loopback."""

from __future__ import annotations

import pkgutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from corral.sim._server import BackgroundServer
from corral.sim.opencode import SimConfig
from corral.sim.opencode import create_app as create_opencode_sim
from tests.support.corral import CorralServer, corral_settings, running_corral
from tests.support.databases import PostgresFactory, sqlite_url

# Every module of tests/plugins is a plugin (a runtime's real-server or simulator fixtures), so
# adding a runtime never edits this file.
pytest_plugins = [
    f"tests.plugins.{module.name}"
    for module in pkgutil.iter_modules([str(Path(__file__).parent / "plugins")])
]


@pytest.fixture(scope="session")
async def postgres() -> AsyncIterator[PostgresFactory]:
    factory = PostgresFactory()
    factory.unavailable = await factory.check()
    yield factory
    if factory.unavailable is None:
        await factory.drop_all()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres: PostgresFactory
) -> AsyncIterator[str]:
    """Every test using this runs twice: on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    if postgres.unavailable:
        pytest.fail(postgres.unavailable)
    url = await postgres.new_database()
    yield url
    await postgres.drop(url)


@pytest.fixture(scope="session")
def opencode_sim_url(mock_llm_url: str) -> Iterator[str]:
    config = SimConfig(llm_url=mock_llm_url, heartbeat_interval=1.0, retry_initial_delay=0.2)
    with BackgroundServer(create_opencode_sim(config)) as url:
        yield url


@pytest.fixture
async def corral(database_url: str, tmp_path: Path) -> AsyncIterator[CorralServer]:
    async with running_corral(corral_settings(database_url, tmp_path)) as server:
        yield server
