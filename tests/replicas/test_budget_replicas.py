"""One budget, three `corral serve` replicas on PostgreSQL, 256 concurrent turns, one replica
SIGKILLed mid-flight: spend never passes the budget, every refusal is a clean problem+json
naming the scope, and once the turns end nothing is left reserved."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.crash.harness import Processes
from tests.replicas.cluster import start_cluster
from tests.support.databases import PostgresFactory, _asyncpg_dsn

REQUESTS = 256
LIMIT_USD = 5.0
ESTIMATE_USD = 0.05  # at most 100 turns fit at once


async def _ledger(dsn: str) -> tuple[int, int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT coalesce(sum(spent), 0) AS spent, coalesce(sum(reserved), 0) AS reserved "
            "FROM ledger_windows WHERE account LIKE 'budget:%'"
        )
        holds = await conn.fetchval("SELECT count(*) FROM ledger_holds")
        return int(row["spent"]), int(row["reserved"]), int(holds)
    finally:
        await conn.close()


async def _session_costs(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT coalesce(sum(cost_micros), 0) FROM sessions"))
    finally:
        await conn.close()


async def _busy_owner(dsn: str) -> str | None:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(  # type: ignore[no-any-return]
            "SELECT owner FROM turns WHERE status = 'running' GROUP BY owner "
            "ORDER BY count(*) DESC LIMIT 1"
        )
    finally:
        await conn.close()


async def test_budget_holds_across_replicas_and_a_kill(
    postgres: PostgresFactory, tmp_path: Path
) -> None:
    if postgres.unavailable:
        pytest.fail(postgres.unavailable)
    url = await postgres.new_database()
    dsn = _asyncpg_dsn(url)
    procs = Processes(tmp_path)
    rng = random.Random(7)
    try:
        cluster = await start_cluster(
            procs, tmp_path, url, lease_seconds="2", lease_check_seconds="0.3",
            pump_grace_seconds="1", turn_estimate_usd=str(ESTIMATE_USD),
            ledger_hold_seconds="2", ledger_turn_grace_seconds="8", db_pool_size="5",
            db_max_overflow="10",
        )  # fmt: skip
        replicas, sim_url = cluster.replicas, cluster.sim_url
        headers = {"Authorization": f"Bearer {cluster.admin_key}"}
        alive = cluster.alive

        async with httpx.AsyncClient(base_url=replicas[0].url, headers=headers, timeout=30) as c:
            team = (await c.post("/v1/teams", json={"name": "t"})).json()
            runtime = (await c.post("/v1/runtimes", json={"name": "oc", "kind": "opencode",
                                                          "base_url": sim_url})).json()  # fmt: skip
            agent = (await c.post("/v1/agents", json={"name": "a", "runtime_id": runtime["id"],
                                                      "team_id": team["id"]})).json()  # fmt: skip
            budget = await c.put(
                "/v1/budgets", json={"scope": f"team:{team['id']}", "limit_usd": LIMIT_USD}
            )
            assert budget.status_code == 200, budget.text

        async def one(i: int) -> httpx.Response | Exception:
            replica = rng.choice(alive())
            async with httpx.AsyncClient(base_url=replica.url, headers=headers, timeout=60) as c:
                try:
                    return await c.post(
                        "/v1/sessions",
                        json={"agent_id": agent["id"], "input": f"request {i} [[slow:3]]"},
                    )
                except httpx.HTTPError as exc:  # the replica we asked was killed
                    return exc

        flight = [asyncio.ensure_future(one(i)) for i in range(REQUESTS)]
        deadline = time.monotonic() + 20
        while (owner := await _busy_owner(dsn)) is None:
            assert time.monotonic() < deadline, "no turn started"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        victim = next(r for r in replicas if r.name == owner)
        assert victim.proc is not None
        await procs.kill(victim.proc, signal.SIGKILL)
        results = await asyncio.gather(*flight)

        admitted = [r for r in results if isinstance(r, httpx.Response) and r.status_code == 201]
        refused = [r for r in results if isinstance(r, httpx.Response) and r.status_code != 201]
        lost = [r for r in results if isinstance(r, Exception)]
        assert admitted and refused, (len(admitted), len(refused), len(lost))
        for response in refused:
            assert response.status_code == 402, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            body: dict[str, Any] = response.json()
            assert body["code"] == "budget_exceeded" and body["scope"] == f"team:{team['id']}"
        # At most LIMIT / ESTIMATE turns can hold a reservation at once.
        assert len(admitted) <= int(LIMIT_USD / ESTIMATE_USD) + len(lost), len(admitted)

        # Every turn ends (the victim's are taken over), every reservation settles or is swept.
        deadline = time.monotonic() + 90
        while True:
            spent, reserved, holds = await _ledger(dsn)
            costs = await _session_costs(dsn)
            if (reserved, holds) == (0, 0) and spent == costs:
                break
            assert time.monotonic() < deadline, (spent, costs, reserved, holds)
            await asyncio.sleep(0.5)
        assert 0 < spent <= LIMIT_USD * 1_000_000
        print(f"\n{len(admitted)} admitted, {len(refused)} refused, {len(lost)} lost with the "
              f"killed replica; settled ${spent / 1e6:.6f} of ${LIMIT_USD:.2f}, nothing reserved")  # fmt: skip
    finally:
        procs.stop_all()
        await postgres.drop(url)
