"""Event ingest: recorded OpenCode traces replayed through the real pump path into the store.

The recorded traces in ``tests/fixtures/opencode/*.jsonl`` (real ``opencode serve`` runs: text,
tool, tool error, permission allowed and rejected, cancel, upstream error) are replayed turn after
turn. Each replay gets its own message, part, call and permission ids, so the recorder's dedupe by
native id keeps every event.

A turn is what the server does for it:

* the two transactions ``SessionService.send`` runs (input and turn rows and ``turn.started``;
  then the input marked delivered);
* then every native frame goes to a real :class:`corral.sessions.pump.Pump` exactly as its
  ``run`` loop does: ``pump.record(pump.mapper.map(frame))``, i.e. ``OpenCodeMapper`` plus one
  ``recorder.record`` write transaction per frame that maps to anything ("per event"); or
* all drafts of the turn in one ``recorder.record`` transaction, as ``Pump.reconcile`` does
  ("batched").

Only the SSE transport (HTTP, the bus's JSON parsing and fan-out queue) is left out. The time
covers everything above; "events" are rows appended to the event log (including the
``turn.started`` and ``session.state`` rows the recorder adds).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa

from bench.harness import Databases, build_services, database
from bench.seed import Fleet, seed_fleet, session_row
from corral.domain.events import EventDraft, EventType
from corral.domain.ids import new_id
from corral.domain.states import SessionState
from corral.runtimes.base import EventSubscription, NativeEvent, RuntimeAdapter, RuntimeTarget
from corral.runtimes.opencode.adapter import OpenCodeAdapter
from corral.runtimes.opencode.mapping import session_of
from corral.services import Services
from corral.sessions import recorder
from corral.sessions.hub import EventHub
from corral.sessions.pump import Pump, PumpTimings
from corral.store import sessions as session_repo
from corral.store import tables as t
from corral.store.db import Database
from corral.store.types import utcnow

# The turn rows carry a lease (as ``SessionService.send`` writes them); nothing checks it here.
LEASE = timedelta(minutes=10)
TRACES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "opencode"
# Ids OpenCode mints per occurrence; the session id is left alone (one native session).
_NATIVE_ID = re.compile(r'"((?:msg|prt|call|per|evt|toolu)_[0-9A-Za-z]+)"')


def load_traces() -> list[tuple[str, list[str]]]:
    """(name, raw JSON lines) of every recorded trace, in a fixed order."""
    traces = []
    for path in sorted(TRACES.glob("*.jsonl")):
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        traces.append((path.stem, lines))
    if not traces:
        raise RuntimeError(f"no OpenCode traces in {TRACES}")
    return traces


def replay_frames(lines: list[str], replay: int, native_session_id: str) -> list[NativeEvent]:
    """The frames of one trace with fresh native ids, as the bus would hand them to a pump."""
    suffix = f"b{replay:05d}"
    frames: list[NativeEvent] = []
    for line in lines:
        frame: dict[str, Any] = json.loads(_NATIVE_ID.sub(rf'"\1{suffix}"', line))
        kind = frame.get("type")
        if session_of(frame) is None or not isinstance(kind, str):
            continue  # the bus drops frames that belong to no session
        frames.append(NativeEvent(native_session_id, kind, frame))
    return frames


class _NoSubscription:
    """The pump's live subscription is never read here: frames are handed over directly."""

    async def __aiter__(self) -> AsyncIterator[NativeEvent]:
        for _ in ():
            yield _

    async def aclose(self) -> None:
        return None


@dataclass
class Counts:
    turns: int = 0
    frames: int = 0
    transactions: int = 0


async def _start_turn(db: Database, session_id: str) -> tuple[str, str]:
    """What ``SessionService.send`` writes before it hands the input to the runtime."""
    turn_id, input_id, now = new_id("turn"), new_id("input"), utcnow()
    async with db.write() as conn:
        locked = await session_repo.get_session(conn, session_id, for_update=True)
        assert locked is not None
        await session_repo.insert_input(
            conn, input_id=input_id, session_id=session_id, turn_id=turn_id, text="go", at=now
        )
        await session_repo.insert_turn(
            conn, turn_id=turn_id, session_id=session_id, ordinal=locked.turns + 1,
            input_id=input_id, at=now, owner="bench-ingest", lease_until=now + LEASE,
        )  # fmt: skip
        await session_repo.update_session(
            conn, session_id, turns=locked.turns + 1, current_turn_id=turn_id
        )
        started = {"turn_id": turn_id, "input_id": input_id, "text": "go"}
        draft = EventDraft(EventType.TURN_STARTED, started, f"turn-start:{turn_id}")
        await recorder.record(conn, session_id, [draft], turn_id=turn_id, at=now)
    return turn_id, input_id


async def _mark_delivered(db: Database, input_id: str) -> None:
    """What ``SessionService.send`` writes once the runtime accepted the input."""
    async with db.write() as conn:
        await session_repo.mark_input(conn, input_id, "delivered", utcnow())


async def _drive(
    pump: Pump, db: Database, turns: list[list[NativeEvent]], *, batched: bool, counts: Counts
) -> None:
    for frames in turns:
        turn_id, input_id = await _start_turn(db, pump.session_id)
        pump.begin_turn(turn_id)
        await _mark_delivered(db, input_id)
        counts.turns += 1
        counts.transactions += 2
        counts.frames += len(frames)
        if batched:
            drafts: list[EventDraft] = []
            for native in frames:
                drafts += pump.mapper.map(native)
            await pump.record(drafts)
            counts.transactions += 1 if drafts else 0
        else:
            for native in frames:
                drafts = pump.mapper.map(native)
                await pump.record(drafts)
                counts.transactions += 1 if drafts else 0
        if pump.turn_id is not None:
            raise RuntimeError(f"turn {pump.turn_id} did not complete during replay")


async def _variant(
    dbs: Databases,
    backend: str,
    workdir: Path,
    *,
    turns: int,
    sessions: int,
    batched: bool,
) -> dict[str, Any]:
    traces = load_traces()
    async with database(dbs, backend, "ingest") as url:
        services = await build_services(url, workdir)
        adapter = OpenCodeAdapter(
            RuntimeTarget(new_id("runtime"), "opencode", "http://127.0.0.1:9", {}, None)
        )
        try:
            return await _measure(services, adapter, traces, turns, sessions, batched)
        finally:
            await adapter.aclose()
            await services.aclose()


async def _measure(
    services: Services,
    adapter: OpenCodeAdapter,
    traces: list[tuple[str, list[str]]],
    turns: int,
    sessions: int,
    batched: bool,
) -> dict[str, Any]:
    db = services.db
    assert services.bootstrap is not None
    fleet: Fleet = await seed_fleet(
        db,
        org_id=services.bootstrap.org.id,
        user_id=services.bootstrap.admin.id,
        teams=1,
        agents_per_team=1,
    )
    rng = random.Random(1)
    rows = [
        session_row(
            fleet, fleet.agents[0], state=SessionState.CREATED, created_at=utcnow(), rng=rng
        )
        for _ in range(sessions)
    ]
    async with db.write() as conn:
        await conn.execute(sa.insert(t.sessions), rows)

    # Frames are parsed and given fresh ids up front: that is the bus's work, not the pump's.
    hub = EventHub()
    plans: list[tuple[Pump, list[list[NativeEvent]]]] = []
    replay = 0
    for row in rows:
        pump = Pump(
            session_id=row["id"],
            native_session_id=row["native_session_id"],
            adapter=cast(RuntimeAdapter, adapter),
            subscription=cast(EventSubscription, _NoSubscription()),
            writer=services.writer,
            hub=hub,
            timings=PumpTimings(),
        )
        mine = []
        for _ in range(turns // sessions):
            _, lines = traces[replay % len(traces)]
            mine.append(replay_frames(lines, replay, row["native_session_id"]))
            replay += 1
        plans.append((pump, mine))

    counts = Counts()
    started = time.perf_counter()
    await asyncio.gather(
        *(_drive(pump, db, mine, batched=batched, counts=counts) for pump, mine in plans)
    )
    seconds = time.perf_counter() - started

    ids = [row["id"] for row in rows]
    async with db.read() as conn:
        stored = int(
            (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(t.events)
                    .where(t.events.c.session_id.in_(ids))
                )
            ).scalar_one()
        )
        final = (
            await conn.execute(sa.select(t.sessions.c.state).where(t.sessions.c.id.in_(ids)))
        ).all()
    if any(r.state not in ("idle", "failed") for r in final):
        raise RuntimeError(f"sessions did not settle: {[r.state for r in final]}")
    return {
        "mode": "batched" if batched else "per_event",
        "sessions": sessions,
        "turns": counts.turns,
        "native_frames": counts.frames,
        "transactions": counts.transactions,
        "stored_events": stored,
        "seconds": round(seconds, 3),
        "events_per_s": round(stored / seconds, 1),
        "transactions_per_s": round(counts.transactions / seconds, 1),
        "frames_per_s": round(counts.frames / seconds, 1),
    }


async def run(
    dbs: Databases, backend: str, workdir: Path, *, turns: int, concurrency: int
) -> dict[str, Any]:
    return {
        "per_event": await _variant(dbs, backend, workdir, turns=turns, sessions=1, batched=False),
        "batched": await _variant(dbs, backend, workdir, turns=turns, sessions=1, batched=True),
        "per_event_concurrent": await _variant(
            dbs, backend, workdir, turns=turns, sessions=concurrency, batched=False
        ),
    }
