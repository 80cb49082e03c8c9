"""Backfill: how fast recovery rebuilds a turn from the runtime's own history.

When a replica takes over a running turn (or its live stream was cut), ``TurnRecovery`` ends in
:meth:`corral.sessions.pump.Pump.reconcile`: ``GET /session/{id}/message`` on OpenCode, the
current turn (the last user message and everything after it) turned into native events, mapped,
``GET /session/status``, and when the runtime is idle the turn closed, all recorded in one write
transaction. This measures that call with Corral in-process (like the ingest scenario) and a
real :class:`~corral.runtimes.opencode.adapter.OpenCodeAdapter` talking HTTP.

The history comes from a real simulated OpenCode (``python -m corral.sim.opencode`` with the mock
LLM): one turn in which the model calls the ``read`` tool and then answers. Two variants:

* **large turn**: an agent that took many tool steps. The turn's tool-calling assistant message
  is repeated ``steps`` times (fresh message, part and call ids each time) between the user
  message and the final answer, and served by a small in-process HTTP server in OpenCode's wire
  format, so reconcile fetches and parses all of it;
* **one real turn**: the simulator's own history of that turn (one tool step and the answer),
  fetched from the simulator itself.

Each repeat backfills into a fresh Corral session whose turn was opened as ``SessionService.send``
opens it (input, turn with lease, ``turn.started``), so nothing is deduplicated away. **Events**
are the rows one ``reconcile()`` appends to the session's log: per tool step ``tool.call``,
``tool.result`` and ``usage``; for the answer ``message.completed`` and ``usage``; then
``turn.completed`` and the ``session.state`` change to idle.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.cluster import Cluster
from bench.harness import Databases, Latency, build_services, database
from bench.procs import Supervisor
from bench.seed import seed_fleet, session_row
from corral.domain.events import EventDraft, EventType
from corral.domain.ids import new_id
from corral.domain.states import SessionState
from corral.runtimes.base import (
    AgentSpec,
    EventSubscription,
    NativeEvent,
    RuntimeAdapter,
    RuntimeTarget,
)
from corral.runtimes.opencode.adapter import OpenCodeAdapter
from corral.services import Services
from corral.sessions import recorder
from corral.sessions.hub import EventHub
from corral.sessions.pump import Pump, PumpTimings
from corral.sim._server import serve_in_loop
from corral.store import sessions as session_repo
from corral.store import tables as t
from corral.store.types import utcnow

PROMPT = '[[tool:read {"filePath": "notes.md"}]] read my notes'
SPEC = AgentSpec(name="bench", model="mock/mock-model", instructions=None, tools=[])


class _Idle:
    """A pump subscription that is never read: only ``reconcile`` is exercised."""

    async def __aiter__(self) -> AsyncIterator[NativeEvent]:
        for _ in ():
            yield _

    async def aclose(self) -> None:
        return None


async def _real_turn(sim_url: str) -> tuple[str, list[dict[str, Any]]]:
    """Run the tool turn on the simulator; (native session id, its messages on the wire)."""
    adapter = OpenCodeAdapter(RuntimeTarget(new_id("runtime"), "opencode", sim_url, {}, None))
    try:
        native = (await adapter.create_session(SPEC, title="backfill")).native_session_id
        await adapter.send(native, PROMPT, SPEC)
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient(base_url=sim_url, timeout=10) as http:
            while True:
                messages: list[dict[str, Any]] = (
                    await http.get(f"/session/{native}/message")
                ).json()
                done = [m for m in messages if m["info"].get("time", {}).get("completed")]
                if await adapter.status(native) == "idle" and len(done) >= 2:
                    return native, messages
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the simulated tool turn did not finish: {messages}")
                await asyncio.sleep(0.05)
    finally:
        await adapter.aclose()


def _large_turn(messages: list[dict[str, Any]], steps: int) -> list[dict[str, Any]]:
    """The user message, ``steps`` copies of the tool-calling step, then the final answer."""
    user = next(m for m in messages if m["info"]["role"] == "user")
    tool_step = next(
        m for m in messages if any(p.get("type") == "tool" for p in m.get("parts") or [])
    )
    answer = messages[-1]
    copies = []
    for k in range(steps):
        step = copy.deepcopy(tool_step)
        suffix = f"x{k:05d}"
        step["info"]["id"] += suffix
        for part in step["parts"]:
            part["id"] += suffix
            part["messageID"] = step["info"]["id"]
            if "callID" in part:
                part["callID"] += suffix
        copies.append(step)
    return [user, *copies, answer]


def _history_app(body: bytes) -> Starlette:
    """Just the routes ``reconcile`` calls, answering with a fixed history."""

    async def messages(_request: Request) -> Response:
        return Response(body, media_type="application/json")

    async def status(_request: Request) -> Response:
        return JSONResponse({})  # no session busy: the turn is over on the runtime

    async def permissions(_request: Request) -> Response:
        return JSONResponse([])  # no prompt pending

    return Starlette(
        routes=[
            Route("/session/status", status, methods=["GET"]),
            Route("/permission", permissions, methods=["GET"]),
            Route("/session/{session_id}/message", messages, methods=["GET"]),
        ]
    )


async def _open_turn(services: Services, session_id: str) -> str:
    """Input, turn (with a lease) and ``turn.started`` in one commit, as a message post does."""
    db = services.db
    turn_id, input_id, now = new_id("turn"), new_id("input"), utcnow()
    async with db.write() as conn:
        session = await session_repo.get_session(conn, session_id, for_update=True)
        assert session is not None
        await session_repo.insert_input(
            conn, input_id=input_id, session_id=session_id, turn_id=turn_id, text=PROMPT, at=now
        )
        await session_repo.insert_turn(
            conn, turn_id=turn_id, session_id=session_id, ordinal=session.turns + 1,
            input_id=input_id, at=now, owner="bench", lease_until=now,
        )  # fmt: skip
        await session_repo.update_session(
            conn, session_id, turns=session.turns + 1, current_turn_id=turn_id
        )
        started = {"turn_id": turn_id, "input_id": input_id, "text": PROMPT}
        draft = EventDraft(EventType.TURN_STARTED, started, f"turn-start:{turn_id}")
        await recorder.record(conn, session_id, [draft], turn_id=turn_id, at=now)
        await session_repo.mark_input(conn, input_id, "delivered", now)
    return turn_id


async def _last_seq(services: Services, session_id: str) -> int:
    async with services.db.read() as conn:
        query = sa.select(t.sessions.c.last_seq).where(t.sessions.c.id == session_id)
        return int((await conn.execute(query)).scalar_one())


async def _backfills(
    services: Services,
    rows: list[dict[str, Any]],
    adapter: OpenCodeAdapter,
    native_id: str,
) -> dict[str, Any]:
    """One ``reconcile()`` per row (a fresh session each); timings and appended rows."""
    hub = EventHub()
    seconds: list[float] = []
    appended: list[int] = []
    for row in rows:
        turn_id = await _open_turn(services, row["id"])
        pump = Pump(
            session_id=row["id"],
            native_session_id=native_id,
            adapter=cast(RuntimeAdapter, adapter),
            subscription=cast(EventSubscription, _Idle()),
            writer=services.writer,
            hub=hub,
            timings=PumpTimings(),
        )
        pump.begin_turn(turn_id)
        # The input counts as delivered (recovery says so once the runtime holds it); older
        # pumps have no such flag and always trust the runtime's idle status.
        mark_delivered = getattr(pump, "mark_delivered", None)
        if callable(mark_delivered):
            mark_delivered()
        before = await _last_seq(services, row["id"])
        started = time.perf_counter()
        await pump.reconcile()
        seconds.append(time.perf_counter() - started)
        appended.append(await _last_seq(services, row["id"]) - before)
        if pump.turn_id is not None:
            raise RuntimeError("reconcile did not complete the turn")
    # the parts of that time that are not the store: fetching and converting, then mapping
    fetch: list[float] = []
    mapping: list[float] = []
    natives: list[NativeEvent] = []
    for _ in rows:
        started = time.perf_counter()
        natives = await adapter.history(native_id)
        fetch.append(time.perf_counter() - started)
        mapper = adapter.mapper()
        mapper.begin_turn("turn_bench")
        started = time.perf_counter()
        for native in natives:
            mapper.map(native)
        mapper.finish_turn()
        mapping.append(time.perf_counter() - started)
    total = sum(seconds)
    return {
        "repeats": len(rows),
        "native_events": len(natives),
        "events_per_backfill": appended[0] if len(set(appended)) == 1 else appended,
        "reconcile_ms": Latency.of(seconds).as_dict(),
        "history_fetch_ms": Latency.of(fetch).as_dict(),
        "mapping_ms": Latency.of(mapping).as_dict(),
        "events_per_s": round(sum(appended) / total, 1) if total else None,
    }


async def run(
    dbs: Databases, backend: str, workdir: Path, *, steps: int, repeats: int
) -> dict[str, Any]:
    async with Supervisor(workdir / f"backfill-{backend}-logs") as sup:
        sims = Cluster(sup, workdir, database_url="")
        await sims.start_llm()
        (sim,) = await sims.add_sims(1)
        native_id, messages = await _real_turn(sim.url)
        large = json.dumps(_large_turn(messages, steps)).encode()
        history_url, stop_history = await serve_in_loop(_history_app(large))
        real = OpenCodeAdapter(RuntimeTarget(new_id("runtime"), "opencode", sim.url, {}, None))
        served = OpenCodeAdapter(
            RuntimeTarget(new_id("runtime"), "opencode", history_url, {}, None)
        )
        try:
            async with database(dbs, backend, "backfill") as url:
                services = await build_services(url, workdir)
                try:
                    rows = await _sessions(services, 2 * repeats)
                    return {
                        "steps": steps,
                        "history_bytes": len(large),
                        "large_turn": await _backfills(
                            services, rows[:repeats], served, "ses_large"
                        ),
                        "real_turn": await _backfills(services, rows[repeats:], real, native_id),
                    }
                finally:
                    await services.aclose()
        finally:
            await real.aclose()
            await served.aclose()
            await stop_history()


async def _sessions(services: Services, count: int) -> list[dict[str, Any]]:
    assert services.bootstrap is not None
    fleet = await seed_fleet(
        services.db,
        org_id=services.bootstrap.org.id,
        user_id=services.bootstrap.admin.id,
        teams=1,
        agents_per_team=1,
    )
    rng = random.Random(3)
    rows = [
        session_row(
            fleet, fleet.agents[0], state=SessionState.CREATED, created_at=utcnow(), rng=rng
        )
        for _ in range(count)
    ]
    async with services.db.write() as conn:
        await conn.execute(sa.insert(t.sessions), rows)
    return rows
