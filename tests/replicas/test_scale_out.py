"""Three `corral serve` replicas on one PostgreSQL, no load balancer: clients pick replicas at
random, the replica owning a running turn is SIGKILLed, another takes the lease over, and the
logs still match the runtime's own record (the crash test's invariants)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.crash.harness import Processes
from tests.crash.invariants import ClientInput, Observed, check
from tests.replicas.cluster import start_cluster
from tests.support.databases import PostgresFactory, _asyncpg_dsn

LEASE_SECONDS = 2.0


async def _owner(dsn: str, turn_id: str) -> str | None:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT owner FROM turns WHERE id = $1", turn_id)  # type: ignore[no-any-return]
    finally:
        await conn.close()


async def test_three_replicas_survive_losing_the_owner(
    postgres: PostgresFactory, tmp_path: Path
) -> None:
    if postgres.unavailable:
        pytest.fail(postgres.unavailable)
    url = await postgres.new_database()
    dsn = _asyncpg_dsn(url)
    procs = Processes(tmp_path)
    rng = random.Random(int(os.environ.get("CORRAL_CRASH_SEED", "5")))
    try:
        cluster = await start_cluster(
            procs, tmp_path, url, lease_seconds=str(LEASE_SECONDS), lease_check_seconds="0.3",
            pump_grace_seconds="1", sse_heartbeat_seconds="1",
        )  # fmt: skip
        replicas, sim_url, admin = cluster.replicas, cluster.sim_url, cluster.admin_key

        def client(key: str) -> httpx.AsyncClient:
            replica = rng.choice([r for r in replicas if r.proc is not None and r.proc.alive()])
            return httpx.AsyncClient(
                base_url=replica.url, headers={"Authorization": f"Bearer {key}"}, timeout=20
            )

        async with client(admin) as c:
            team = (await c.post("/v1/teams", json={"name": "t"})).json()
            runtime = (
                await c.post(
                    "/v1/runtimes", json={"name": "oc", "kind": "opencode", "base_url": sim_url}
                )
            ).json()
        async with client(admin) as c:
            agent = (
                await c.post(
                    "/v1/agents",
                    json={"name": "a", "runtime_id": runtime["id"], "team_id": team["id"]},
                )
            ).json()

        takeovers: list[float] = []
        for round_ in range(3):
            sessions: list[tuple[str, str]] = []
            for i in range(3):
                async with client(admin) as c:
                    text = (
                        f"round {round_} session {i} "
                        + " ".join(f"w{k}" for k in range(12))
                        + " [[slow:2]]"
                    )
                    created = await c.post(
                        "/v1/sessions", json={"agent_id": agent["id"], "input": text}
                    )
                    assert created.status_code == 201, created.text
                    body = created.json()
                    sessions.append((body["id"], text))
            await asyncio.sleep(rng.uniform(0.3, 1.0))
            async with client(admin) as c:
                victim_turn = (await c.get(f"/v1/sessions/{sessions[0][0]}")).json()[
                    "current_turn_id"
                ]
            owner = await _owner(dsn, victim_turn)
            victim = next(r for r in replicas if r.name == owner)
            assert victim.proc is not None
            killed_at = time.monotonic()
            await procs.kill(victim.proc, signal.SIGKILL)
            while (now_owner := await _owner(dsn, victim_turn)) in (owner,):
                assert time.monotonic() - killed_at < LEASE_SECONDS * 5, (
                    "no replica took the lease over"
                )
                await asyncio.sleep(0.02)
            takeovers.append(time.monotonic() - killed_at)
            assert now_owner is None or now_owner != owner
            for sid, text in sessions:
                async with client(admin) as c:
                    for _ in range(300):
                        session = (await c.get(f"/v1/sessions/{sid}")).json()
                        if session["state"] in ("idle", "failed"):
                            break
                        await asyncio.sleep(0.05)
                    events: list[dict[str, Any]] = []
                    after = 0
                    while True:
                        page = (
                            await c.get(
                                f"/v1/sessions/{sid}/events", params={"after": after, "limit": 200}
                            )
                        ).json()
                        events += page["data"]
                        if not page["next_cursor"]:
                            break
                        after = int(page["next_cursor"])
                    session = (await c.get(f"/v1/sessions/{sid}")).json()
                async with httpx.AsyncClient(base_url=sim_url) as runtime_client:
                    history = (
                        await runtime_client.get(f"/session/{session['native_session_id']}/message")
                    ).json()
                observed = Observed(session=session, events=events, history=history,
                                    inputs=[ClientInput(text, "", 201)], kill_times=[time.time()])  # fmt: skip
                findings = check(observed)
                assert session["state"] == "idle", (sid, session["state"])
                assert not findings, (sid, findings)
            await victim.start()  # back in the pool (it reclaims nothing: the leases moved)
        print(
            f"\nlease takeover after SIGKILL (lease {LEASE_SECONDS}s): {[round(t, 2) for t in takeovers]}"
        )
    finally:
        procs.stop_all()
        await postgres.drop(url)
