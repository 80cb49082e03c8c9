"""Three `corral serve` replicas on one PostgreSQL, no load balancer: clients pick replicas at
random, the replica owning a running turn is SIGKILLed, another takes the lease over, and the
logs still match the runtime's own record (the crash test's invariants)."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.crash.harness import CORRAL, PYTHON, Proc, Processes, free_port, wait_http
from tests.crash.invariants import ClientInput, Observed, check
from tests.support.databases import PostgresFactory, _asyncpg_dsn

LEASE_SECONDS = 2.0


class Replica:
    def __init__(self, name: str, procs: Processes, env: dict[str, str], workdir: Path) -> None:
        self.name, self.procs, self.env, self.workdir = name, procs, env, workdir
        self.port = free_port()
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        env = {**self.env, "CORRAL_INSTANCE_ID": self.name}
        argv = [CORRAL, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = self.procs.spawn(self.name, argv, env=env, cwd=self.workdir)
        await wait_http(f"{self.url}/readyz", self.proc)


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
        llm_port, sim_port = free_port(), free_port()
        llm = procs.spawn(
            "mock-llm",
            [
                PYTHON,
                "-m",
                "corral.sim.mock_llm",
                "--port",
                str(llm_port),
                "--log-level",
                "warning",
            ],
            cwd=tmp_path,
        )
        await wait_http(f"http://127.0.0.1:{llm_port}/v1/models", llm)
        sim_url = f"http://127.0.0.1:{sim_port}"
        sim = procs.spawn("opencode", [PYTHON, "-m", "corral.sim.opencode", "--port", str(sim_port),
                                       "--llm-url", f"http://127.0.0.1:{llm_port}", "--heartbeat", "1",
                                       "--directory", str(tmp_path)], cwd=tmp_path)  # fmt: skip
        await wait_http(f"{sim_url}/global/health", sim)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
        env.update(
            PYTHONUNBUFFERED="1",
            CORRAL_DATABASE_URL=url,
            CORRAL_MASTER_KEY=base64.b64encode(os.urandom(32)).decode(),
            CORRAL_KEY_FILE=str(tmp_path / "master.key"),
            CORRAL_LEASE_SECONDS=str(LEASE_SECONDS),
            CORRAL_LEASE_CHECK_SECONDS="0.3",
            CORRAL_PUMP_GRACE_SECONDS="1",
            CORRAL_SSE_HEARTBEAT_SECONDS="1",
            CORRAL_LOG_LEVEL="warning",
        )
        replicas = [Replica(f"replica-{i}", procs, env, tmp_path) for i in range(3)]
        await replicas[0].start()  # the first one bootstraps the org and prints the admin key
        await asyncio.gather(*(r.start() for r in replicas[1:]))
        assert replicas[0].proc is not None
        log = replicas[0].proc.log.read_text()
        admin = next(w for w in log.split() if w.startswith("ck_"))

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
