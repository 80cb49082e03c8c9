"""Session create latency: ``POST /v1/sessions`` (no input) through the HTTP API.

Each request authenticates the key, loads the agent, inserts the session, resolves and decrypts
the runtime credentials, calls the simulated OpenCode's ``POST /session`` (a separate process,
with HTTP Basic auth), records ``session.created`` and reads the session back. The client is an
``httpx.AsyncClient`` with keep-alive on the same event loop as the server, so its own overhead
is part of every number.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import (
    Databases,
    Latency,
    corral_server,
    database,
    expect,
    simulated_opencode,
)

WARMUP = 10


async def _setup(
    admin: httpx.AsyncClient, sim_url: str, username: str, password: str
) -> tuple[str, str]:
    """Team, developer, key, runtime with credentials (the API journey); (dev key, runtime)."""
    team = await expect(await admin.post("/v1/teams", json={"name": "bench"}), 201)
    dev = await expect(
        await admin.post(
            "/v1/users",
            json={"name": "Bench", "email": "bench@example.com", "team_id": team["id"],
                  "role": "developer"},
        ),
        201,
    )  # fmt: skip
    key = await expect(
        await admin.post("/v1/keys", json={"name": "bench", "user_id": dev["id"]}), 201
    )
    runtime = await expect(
        await admin.post(
            "/v1/runtimes", json={"name": "oc", "kind": "opencode", "base_url": sim_url}
        ),
        201,
    )
    await expect(
        await admin.put(
            f"/v1/runtimes/{runtime['id']}/credentials",
            json={"credentials": {"username": username, "password": password}},
        )
    )
    return str(key["key"]), str(runtime["id"])


async def _create(client: httpx.AsyncClient, agent_id: str) -> float:
    started = time.perf_counter()
    response = await client.post("/v1/sessions", json={"agent_id": agent_id})
    elapsed = time.perf_counter() - started
    await expect(response, 201)
    return elapsed


async def run(
    dbs: Databases, backend: str, workdir: Path, *, sequential: int, concurrent: int, workers: int
) -> dict[str, Any]:
    async with (
        simulated_opencode(workdir) as sim,
        database(dbs, backend, "create") as url,
        corral_server(url, workdir) as corral,
    ):
        async with corral.admin() as admin:
            dev_key, runtime_id = await _setup(admin, sim.url, sim.username, sim.password)
        limits = httpx.Limits(max_connections=workers * 2, max_keepalive_connections=workers * 2)
        async with corral.client(dev_key, limits=limits) as dev:
            agent = await expect(
                await dev.post(
                    "/v1/agents",
                    json={"name": "bench-agent", "runtime_id": runtime_id,
                          "model": "mock/mock-model", "instructions": "Be brief."},
                ),
                201,
            )  # fmt: skip
            agent_id = agent["id"]
            for _ in range(WARMUP):
                await _create(dev, agent_id)

            seq = [await _create(dev, agent_id) for _ in range(sequential)]

            per_worker = max(1, concurrent // workers)
            conc: list[float] = []

            async def worker() -> None:
                for _ in range(per_worker):
                    conc.append(await _create(dev, agent_id))

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(workers)))
            wall = time.perf_counter() - started
    return {
        "sequential": Latency.of(seq).as_dict(),
        "concurrent": {
            **Latency.of(conc).as_dict(),
            "workers": workers,
            "throughput_per_s": round(len(conc) / wall, 1),
        },
    }
