"""A private simulated gateway per test, so fault injection and connection counts touch nobody
else (the session-scoped one from tests/plugins/openclaw.py is shared with the suite)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from corral.sim._server import BackgroundServer
from corral.sim.openclaw import create_app
from corral.sim.openclaw.state import GatewayState
from tests.plugins.openclaw import sim_config


@pytest.fixture
def sim(mock_llm_url: str) -> Iterator[tuple[str, GatewayState]]:
    app = create_app(sim_config(mock_llm_url))
    with BackgroundServer(app) as url:
        yield url, app.state.gateway
