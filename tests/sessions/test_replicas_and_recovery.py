"""Two Corral replicas on one PostgreSQL; recovery of turns orphaned by a crash (in-process)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.runtimes.opencode.client import OpenCodeClient
from corral.store import sessions as session_repo
from corral.store.types import utcnow
from tests.support.corral import CorralServer, corral_settings, ok, running_corral
from tests.support.databases import PostgresFactory
from tests.support.fleet import make_agent, make_runtime, make_team, make_user
from tests.support.sse import events_of, read_stream, turn_done


async def _fleet(corral: CorralServer, sim_url: str) -> dict[str, Any]:
    team = await make_team(corral, "a")
    dev = await make_user(corral, team["id"], "developer", "d@x.io")
    runtime = await make_runtime(corral, sim_url)
    agent = await make_agent(corral, dev["key"], runtime["id"])
    return {"key": dev["key"], "agent": agent}


def _count_store_reads(corral: CorralServer) -> list[int]:
    """Record the cursor of each event read a replica's streams make from the store."""
    service = corral.services.sessions
    read = service._batch
    cursors: list[int] = []

    async def counted(session_id: str, after: int) -> list[Any]:
        cursors.append(after)
        return await read(session_id, after)

    service._batch = counted  # type: ignore[method-assign]
    return cursors


async def test_a_client_on_replica_b_sees_events_pumped_by_replica_a_at_once(
    postgres: PostgresFactory, opencode_sim_url: str, tmp_path: Path
) -> None:
    if postgres.unavailable:
        pytest.fail(postgres.unavailable)
    url = await postgres.new_database()
    # Polling is pushed out of reach, so only LISTEN/NOTIFY can wake replica B's stream.
    common = {"sse_poll_seconds": 60.0, "sse_heartbeat_seconds": 60.0}
    settings_a = corral_settings(url, tmp_path / "a", instance_id="replica-a", **common)
    master = settings_a.master_key
    settings_b = corral_settings(
        url, tmp_path / "b", instance_id="replica-b", master_key=master, **common
    )
    try:
        async with (
            running_corral(settings_a) as a,
            running_corral(settings_b, bootstrap=False) as b,
        ):
            assert b.services.listener is not None
            await asyncio.wait_for(b.services.listener.connected.wait(), 10)
            ctx = await _fleet(a, opencode_sim_url)
            async with a.client(ctx["key"]) as on_a, b.client(ctx["key"]) as on_b:
                session = await ok(
                    await on_a.post("/v1/sessions", json={"agent_id": ctx["agent"]["id"]}), 201
                )
                sid = session["id"]
                reads = _count_store_reads(b)
                reader = asyncio.create_task(read_stream(on_b, sid, until=turn_done, timeout=20))
                await asyncio.sleep(0.3)
                await ok(
                    await on_a.post(
                        f"/v1/sessions/{sid}/messages", json={"text": "hello replicas"}
                    ),
                    202,
                )
                frames = events_of(await reader)
                assert [f.id for f in frames] == list(range(1, len(frames) + 1))
                done = [f.data["data"] for f in frames if f.event == "message.completed"]
                assert done[-1]["content"][0]["text"] == "Echo: hello replicas"
                # A's notices carried the events: B read the store when the stream began (and
                # maybe once more if a notice raced that read), not once per event.
                assert len(frames) >= 6 and len(reads) <= 2, (len(frames), reads)
                # A revoked key is refused on the other replica on the very next request.
                me = await ok(await on_b.get("/v1/me"))
                async with a.admin() as admin:
                    await ok(await admin.post(f"/v1/keys/{me['key_id']}/revoke"))
                assert (await on_b.get("/v1/me")).status_code == 401
    finally:
        await postgres.drop(url)


async def test_turn_orphaned_before_delivery_is_delivered_once_after_restart(
    database_url: str, opencode_sim_url: str, tmp_path: Path
) -> None:
    settings = corral_settings(database_url, tmp_path, instance_id="solo")
    async with running_corral(settings) as corral:
        ctx = await _fleet(corral, opencode_sim_url)
        async with corral.client(ctx["key"]) as client:
            first = await ok(
                await client.post(
                    "/v1/sessions", json={"agent_id": ctx["agent"]["id"], "input": "one"}
                ),
                201,
            )
            await read_stream(client, first["id"], until=turn_done)
            second = await ok(
                await client.post(
                    "/v1/sessions", json={"agent_id": ctx["agent"]["id"], "input": "two"}
                ),
                201,
            )
            await read_stream(client, second["id"], until=turn_done)
        # Crash simulation: two more turns written to the outbox whose delivery never finished;
        # the runtime got the first one (its acknowledgement was lost), not the second.
        db = corral.services.db
        pending: dict[str, str] = {}
        for session, text, reached in ((first, "again one", True), (second, "again two", False)):
            turn_id, input_id = f"trn_crash{session['id'][-6:]}", f"inp_crash{session['id'][-6:]}"
            async with db.write() as conn:
                row = await session_repo.get_session(conn, session["id"], for_update=True)
                assert row is not None
                now = utcnow()
                await session_repo.insert_input(
                    conn, input_id=input_id, session_id=row.id, turn_id=turn_id, text=text, at=now
                )
                await session_repo.insert_turn(conn, turn_id=turn_id, session_id=row.id, ordinal=row.turns + 1,
                                               input_id=input_id, at=now, owner="a-dead-replica", lease_until=now)  # fmt: skip
                await session_repo.update_session(
                    conn, row.id, turns=row.turns + 1, current_turn_id=turn_id, state="running"
                )
            if reached:
                oc = OpenCodeClient(opencode_sim_url)
                await oc.prompt_async(
                    str(row.native_session_id), {"parts": [{"type": "text", "text": text}]}
                )
                await oc.aclose()
            pending[session["id"]] = text
    # "Restart": a new process on the same database claims the expired leases and recovers.
    async with running_corral(settings, bootstrap=False) as again:
        async with again.client(ctx["key"]) as client:
            for sid, text in pending.items():
                await _wait_idle(client, sid)
                events = (
                    await ok(await client.get(f"/v1/sessions/{sid}/events", params={"limit": 200}))
                )["data"]
                assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
                texts = [
                    e["data"]["content"][0]["text"]
                    for e in events
                    if e["type"] == "message.completed"
                ]
                assert texts.count(f"Echo: {text}") == 1, texts
                native = (await ok(await client.get(f"/v1/sessions/{sid}")))["native_session_id"]
                async with httpx.AsyncClient(base_url=opencode_sim_url) as sim:
                    history = (await sim.get(f"/session/{native}/message")).json()
                users = [m for m in history if m["info"]["role"] == "user"]
                assert [p["text"] for m in users for p in m["parts"] if p["type"] == "text"].count(
                    text
                ) == 1


async def _wait_idle(client: httpx.AsyncClient, sid: str) -> None:
    for _ in range(200):
        body = await ok(await client.get(f"/v1/sessions/{sid}"))
        if body["state"] == "idle":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"session {sid} did not settle: {body['state']}")
