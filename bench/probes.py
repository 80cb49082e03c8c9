"""What else happened during a measured window: this process's loop, the replicas' loops,
PostgreSQL's own commits.

Every event Corral records waits for one commit, and a commit waits for PostgreSQL's WAL to
reach the disk. On a shared or virtual disk that flush sometimes takes 100-300 ms however idle
Corral is; every stream waits with it. This probe commits a one-row insert on its own
connection every :data:`INTERVAL` seconds, so a level's report says whether a slow tail came
from Corral or from the database underneath it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import asyncpg
import httpx

from bench.harness import Latency, asyncpg_dsn

INTERVAL = 0.05
#: A commit this slow is a stall: every write waits on it.
STALL_MS = 50.0


async def commit_latency(database_url: str, until: float) -> dict[str, Any]:
    """Sample until ``until`` (epoch seconds); {} when the database is not PostgreSQL."""
    if not database_url.startswith("postgresql"):
        return {}
    conn = await asyncpg.connect(asyncpg_dsn(database_url), timeout=10)
    samples: list[float] = []
    stalls: list[float] = []
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_commit_probe (at timestamptz)")
        while time.time() < until:
            began = time.perf_counter()
            await conn.execute("INSERT INTO bench_commit_probe VALUES (now())")
            took = time.perf_counter() - began
            samples.append(took)
            if took * 1000 >= STALL_MS:
                stalls.append(round(took * 1000, 1))
            await asyncio.sleep(max(0.0, INTERVAL - took))
        await conn.execute("TRUNCATE bench_commit_probe")
    finally:
        await conn.close()
    return {
        "postgres_commit_ms": Latency.of(samples).as_dict(),
        "postgres_commit_stalls_ms": stalls,
    }


async def responsiveness(clients: list[httpx.AsyncClient], until: float) -> dict[str, Any]:
    """Until ``until``: how late this process's loop wakes from 10 ms sleeps (the client's own
    share of the latencies) and how long each replica takes to answer ``GET /healthz`` (its
    loop's responsiveness), each sampled every 10 ms / 100 ms."""
    lag: list[float] = []
    health: list[float] = []

    async def loop_lag() -> None:
        while time.time() < until:
            began = time.perf_counter()
            await asyncio.sleep(0.01)
            lag.append(time.perf_counter() - began - 0.01)

    async def healthz(client: httpx.AsyncClient) -> None:
        while time.time() < until:
            began = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                await client.get("/healthz")
                health.append(time.perf_counter() - began)
            await asyncio.sleep(0.1)

    await asyncio.gather(loop_lag(), *(healthz(c) for c in clients))
    return {
        "client_loop_lag_ms": Latency.of(lag).as_dict(),
        "replica_healthz_ms": Latency.of(health).as_dict(),
    }
