"""The stream backstop: events written without a notification still reach open streams.

A write this process does not publish (as after a lost NOTIFY, or a write the listener skips as
its own) leaves stream tails behind the log. The backstop's one query over every followed
session finds them and wakes exactly those readers; on both databases.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from corral.domain.events import Event, EventDraft, EventType
from corral.sessions import recorder
from corral.store.types import utcnow
from tests.support.corral import CorralServer, corral_settings, ok, running_corral
from tests.support.fleet import developer_agent
from tests.support.sse import Frame, read_stream


async def _session(corral: CorralServer, key: str, agent_id: str) -> str:
    async with corral.client(key) as client:
        made = await ok(await client.post("/v1/sessions", json={"agent_id": agent_id}), 201)
    return str(made["id"])


async def _write_unannounced(corral: CorralServer, session_id: str, text: str) -> int:
    """Record an event straight into the store, telling no stream about it."""
    draft = EventDraft(EventType.MESSAGE_DELTA, {"text": text}, f"delta:{text}")
    async with corral.services.db.write() as conn:
        stored = await recorder.record(conn, session_id, [draft], turn_id=None, at=utcnow())
    return stored[-1].seq


def _delta(text: str) -> Callable[[Frame], bool]:
    return lambda f: (
        f.event == "message.delta" and ((f.data or {}).get("data") or {}).get("text") == text
    )


@pytest.fixture
async def corral(database_url: str, tmp_path: Path) -> AsyncIterator[CorralServer]:
    # The background sweeps wait out the test: only its own sweeps run.
    settings = corral_settings(
        database_url, tmp_path, sse_backstop_seconds=600.0, sse_poll_seconds=600.0
    )
    async with running_corral(settings) as server:
        yield server


async def test_sweep_wakes_only_the_streams_whose_log_moved(
    corral: CorralServer, opencode_sim_url: str
) -> None:
    dev, agent = await developer_agent(corral, opencode_sim_url, "b@x.io")
    moved, still = [await _session(corral, dev["key"], agent["id"]) for _ in range(2)]
    backstop = corral.services.backstop
    assert backstop is not None

    async with corral.client(dev["key"]) as client:
        readers = {
            sid: asyncio.create_task(read_stream(client, sid, until=_delta("late"), timeout=15))
            for sid in (moved, still)
        }
        # Both streams are open and have read the log once.
        for _ in range(100):
            if set(corral.services.sessions._hub.followed()) == {moved, still}:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert await backstop.sweep() == 0  # every tail is up to date: nobody is woken

        seq = await _write_unannounced(corral, moved, "late")
        await asyncio.sleep(1.0)  # heartbeats come and go; nothing reads the store
        assert not readers[moved].done()

        assert await backstop.sweep() == 1
        frames: list[Frame] = await asyncio.wait_for(readers[moved], 5)
        assert frames[-1].id == seq
        assert await backstop.sweep() == 0  # caught up
        assert not readers[still].done()
        readers[still].cancel()


async def test_a_commit_published_during_the_grace_sends_nobody_to_the_store(
    corral: CorralServer, opencode_sim_url: str
) -> None:
    """The sweep's query can see a commit before its pump has published the events (a busy
    replica): those readers are left to the publication, not sent to the store."""
    dev, agent = await developer_agent(corral, opencode_sim_url, "b@x.io")
    sid = await _session(corral, dev["key"], agent["id"])
    backstop = corral.services.backstop
    assert backstop is not None
    hub = corral.services.sessions._hub

    async with corral.client(dev["key"]) as client:
        reader = asyncio.create_task(read_stream(client, sid, until=_delta("end"), timeout=15))
        for _ in range(100):
            if hub.followed().get(sid) is not None:
                break
            await asyncio.sleep(0.05)
        generation = hub.generation(sid)

        async def record(text: str) -> list[Event]:
            draft = EventDraft(EventType.MESSAGE_DELTA, {"text": text}, f"delta:{text}")
            async with corral.services.db.write() as conn:
                return await recorder.record(conn, sid, [draft], turn_id=None, at=utcnow())

        stored = await record("soon")
        sweep = asyncio.create_task(backstop.sweep())
        await asyncio.sleep(0.1)  # the sweep has read the store and waits out its grace
        hub.publish(sid, stored)  # what the pump does right after its commit
        assert await sweep == 0
        assert hub.generation(sid) == generation  # the tail was never invalidated
        hub.publish(sid, await record("end"))
        frames: list[Frame] = await asyncio.wait_for(reader, 5)
        texts = [((f.data or {}).get("data") or {}).get("text") for f in frames]
        assert [t for t in texts if t] == ["soon", "end"]
