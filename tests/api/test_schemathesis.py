"""Property-based fuzzing of every operation in /openapi.json: no input may cause a 5xx.

Corral runs on a real loopback server (in a thread, so the synchronous schemathesis calls do not
block its loop), with an admin key so generated requests get past authentication.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from corral.api.app import create_app
from corral.services import build
from corral.sim._server import BackgroundServer
from tests.support.corral import corral_settings


@pytest.fixture(scope="module")
def live_corral(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    config = corral_settings(f"sqlite:///{workdir / 'corral.db'}", workdir)
    # Bootstrap once up front to learn the admin key; the server then reuses the same database.
    services = asyncio.run(build(config))
    assert services.bootstrap is not None and services.bootstrap.key is not None
    admin_key = services.bootstrap.key.plaintext
    asyncio.run(services.db.dispose())
    with BackgroundServer(create_app(config)) as url:
        yield {"url": url, "key": admin_key}


def _schema() -> Any:
    # The schema comes from the app itself, so operations are known at collection time.
    spec = create_app(corral_settings("sqlite://", Path("/nonexistent"))).openapi()
    # The SSE stream never ends by design; the end-to-end tests cover it.
    return schemathesis.openapi.from_dict(spec).exclude(path_regex=r".*/stream$")


SCHEMA = _schema()
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_no_input_causes_a_server_error(operation: Any, live_corral: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {live_corral['key']}"}

    @given(case=operation.as_strategy())
    @settings(
        max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def fuzz(case: Any) -> None:
        response = case.call(base_url=live_corral["url"], headers=headers, timeout=10)
        case.validate_response(response, checks=[not_a_server_error])
        if 400 <= response.status_code < 500:
            assert response.headers["content-type"][0] == "application/problem+json", response.text
            assert response.json()["code"]

    fuzz()
