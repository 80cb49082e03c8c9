"""`corral db copy`: a pilot's SQLite history moves to PostgreSQL and keeps working there."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.corral import corral_settings, ok, running_corral
from tests.support.databases import PostgresFactory
from tests.support.fleet import make_agent, make_runtime, make_team, make_user
from tests.support.sse import read_stream, turn_done

BIN = Path(sys.executable).parent / "corral"


async def test_copy_sqlite_to_postgres(
    postgres: PostgresFactory, opencode_sim_url: str, tmp_path: Path
) -> None:
    if postgres.unavailable:
        pytest.fail(postgres.unavailable)
    sqlite = f"sqlite:///{tmp_path / 'pilot.db'}"
    settings = corral_settings(sqlite, tmp_path)
    async with running_corral(settings) as pilot:
        team = await make_team(pilot, "a")
        dev = await make_user(pilot, team["id"], "developer", "d@x.io")
        runtime = await make_runtime(pilot, opencode_sim_url)
        async with pilot.admin() as admin:
            await ok(
                await admin.put(
                    f"/v1/runtimes/{runtime['id']}/credentials",
                    json={"credentials": {"password": "p"}},
                )
            )
        agent = await make_agent(pilot, dev["key"], runtime["id"])
        async with pilot.client(dev["key"]) as client:
            session = await ok(
                await client.post("/v1/sessions", json={"agent_id": agent["id"], "input": "hi"}),
                201,
            )
            await read_stream(client, session["id"], until=turn_done)
            before = await ok(await client.get(f"/v1/sessions/{session['id']}/events"))
    target = await postgres.new_database()  # migrated, no rows
    done = await asyncio.to_thread(
        subprocess.run, [str(BIN), "db", "copy", "--from", sqlite, "--to", target, "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    again = await asyncio.to_thread(
        subprocess.run, [str(BIN), "db", "copy", "--from", sqlite, "--to", target],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 1 and "not empty" in again.stderr

    moved = corral_settings(target, tmp_path, master_key=settings.master_key)
    async with running_corral(moved, bootstrap=False) as prod:
        async with prod.client(dev["key"]) as client:  # the same keys work
            after = await ok(await client.get(f"/v1/sessions/{session['id']}/events"))
            assert after == before
            await ok(
                await client.post(
                    f"/v1/sessions/{session['id']}/messages", json={"text": "still here"}
                ),
                202,
            )
            frames = await read_stream(
                client, session["id"], last_event_id=before["data"][-1]["seq"], until=turn_done
            )
            assert frames[0].id == before["data"][-1]["seq"] + 1
