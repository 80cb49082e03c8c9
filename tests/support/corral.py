"""A real Corral server on loopback for tests, plus a small typed HTTP helper."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from corral.api.app import create_app
from corral.config import Settings
from corral.services import Services, build
from corral.sim._server import serve_in_loop


@dataclass
class CorralServer:
    url: str
    admin_key: str
    services: Services

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=20.0, **kwargs)

    def admin(self) -> httpx.AsyncClient:
        return self.client(self.admin_key)


def corral_settings(database_url: str, workdir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "master_key": base64.b64encode(os.urandom(32)).decode(),
        "key_file": workdir / "master.key",
        "sse_heartbeat_seconds": 0.5,
        "pump_grace_seconds": 1.0,
        "pump_silence_seconds": 5.0,
        **overrides,
    }
    return Settings(**values)


@asynccontextmanager
async def running_corral(
    settings: Settings, *, bootstrap: bool = True
) -> AsyncIterator[CorralServer]:
    """Serve Corral on loopback; ``bootstrap=False`` for a second process on an existing database."""
    services = await build(settings)
    assert services.bootstrap is not None
    if bootstrap:
        assert services.bootstrap.key is not None
    app = create_app(services=services)
    url, stop = await serve_in_loop(app)
    services.start()
    try:
        key = services.bootstrap.key.plaintext if services.bootstrap.key else ""
        yield CorralServer(url, key, services)
    finally:
        await stop()
        await services.aclose()


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json() if response.content else None
