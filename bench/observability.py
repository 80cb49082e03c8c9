"""The ``observability`` scenario: what the audit trail and tracing add to a turn and a decision.

Corral runs in the benchmark process, built as ``corral serve`` builds it (``services.build``:
the audit log with its vault-sealed signing key and a checkpoint every 1,000 records, the
governor with the audit and telemetry decision listeners, telemetry with no OTLP collector, the
SQLite WAL checkpointer that ``Services.start`` runs), against a fresh database per backend. Everything measured runs with every thread of the process
pinned to one core (SQLite's driver threads too); the PostgreSQL server is not pinned.

1. **Audit append.** A caller's write transaction (a team row inserted, as ``team.create``
   does) with ``AuditLog.append`` as its last statement, against the identical transaction
   without it, and two trivial statements (``SELECT 1`` twice) in a write transaction: the
   floor of any two-statement append on this machine. Also ``AuditLog.record`` (a transaction
   of its own, commit included). The four variants take turns, iteration by iteration.
2. **The decision path** (a gateway call's tracing and audit are measured on the gateway itself,
   traced against untraced, by the ``gateway`` scenario). ``Governor.decide()`` for
   ``model.call`` on the governance scenario's data set (1,000 policies, 10,000 budgets), from 64
   subjects with budgets on 3-6 scopes, in alternating blocks with the production listeners
   attached (audit queue, telemetry) and with none, the audit writer and the span store running
   in the background as in production. Per decision: the latency added (``decide()`` on minus
   off) and the process CPU added, background writes included (CPU of a block, once its audit
   records and spans are committed, per decision). Then each listener alone.
3. **A turn.** A 60-event OpenCode-shaped turn (two text messages streamed as deltas, two tool
   calls with their governance decisions, usage) recorded through ``EventWriter``, one
   transaction per event as a lone pump commits them: the recording cost. Then the stored event
   batches, replayed under fresh turn ids, published through an ``EventHub`` with the telemetry
   tap attached and through one with no tap, turn by turn; closing the traces (``invoke_agent``
   span, metrics) and storing the spans is timed apart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.governance import MODELS, Observed, build_world, one_core, seed
from bench.harness import Databases, Latency, build_services, database, percentile
from bench.procs import cpu_seconds, pids_named
from bench.seed import seed_fleet, session_row
from corral.audit.log import AuditLog
from corral.audit.record import ActorType, AuditEntry
from corral.domain.events import Event, EventDraft, EventType, turn_end_native_id
from corral.domain.governance import Act, Decision, DecisionRequest
from corral.domain.ids import new_id
from corral.domain.roles import Role
from corral.domain.states import SessionState
from corral.governance.governor import Governor
from corral.governance.ledger import Reservation
from corral.services import Services
from corral.sessions import recorder
from corral.sessions.hub import EventHub
from corral.store import audit as audit_repo
from corral.store import sessions as session_repo
from corral.store import tables as t
from corral.store.db import Database
from corral.store.types import utcnow
from corral.telemetry.service import Telemetry

APPEND_TARGET_MS = 2.0
APPEND_WARMUP = 300
DECIDE_WARMUP = 2_000
BLOCK = 2_000  # decide() calls per block; blocks alternate listeners on / off
LISTENER_CALLS = 2_000
SUBJECTS = 64
SESSIONS = 8
FLUSH_EVERY = 50  # replayed turns between trace flushes
TURN_EVENTS = 60
#: Live Corral CPU per delivered event (docs/benchmarks.md, recovery: 3 replicas, PostgreSQL).
LIVE_CPU_MS_PER_EVENT = (1.6, 2.5)
SELECT_1 = sa.text("SELECT 1")
LEASE = timedelta(minutes=10)  # the turn rows' lease, as SessionService.send writes it


@dataclass(frozen=True)
class ObservabilityConfig:
    appends: int = 3_000  # per variant, after the warm-up
    calls: int = 20_000  # decide() calls per variant (listeners on, off)
    turns: int = 400  # turns replayed through the hub, per variant
    recorded_turns: int = 20  # turns recorded through EventWriter


# -- statistics ----------------------------------------------------------------------------------


def _us(ns: Sequence[float]) -> dict[str, float]:
    us = [n / 1_000 for n in ns]
    if not us:
        return {"n": 0}
    return {
        "n": len(us),
        "p50_us": round(percentile(us, 50), 2),
        "p99_us": round(percentile(us, 99), 2),
        "max_us": round(max(us), 2),
        "mean_us": round(sum(us) / len(us), 2),
    }


def _ms(seconds: Sequence[float]) -> dict[str, float]:
    return Latency.of(seconds).as_dict()


async def _count(db: Database, table: sa.Table) -> int:
    async with db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


# -- 1. the audit append -------------------------------------------------------------------------

_INSERT_TEAM = sa.insert(t.teams)


async def measure_audit(services: Services, n: int) -> dict[str, Any]:
    db, audit = services.db, services.audit
    assert services.bootstrap is not None
    org = services.bootstrap.org.id
    admin = services.bootstrap.admin.id
    key = services.bootstrap.key.key.id if services.bootstrap.key else None

    def team_entry(team_id: str, name: str) -> AuditEntry:
        return AuditEntry(
            action="team.create", resource_type="team", resource_id=team_id, org_id=org,
            team_id=team_id, actor_type=ActorType.KEY.value, key_id=key, user_id=admin,
            role=Role.ADMIN.value, details={"name": name}, request_id="req_" + os.urandom(12).hex(),
        )  # fmt: skip

    def team_row() -> dict[str, Any]:
        team_id = new_id("team")
        return {"id": team_id, "org_id": org, "name": f"obs-{team_id}", "created_at": utcnow()}

    samples: dict[str, list[float]] = {k: [] for k in ("append", "with", "without", "floor", "own")}
    clock = time.perf_counter

    async def with_append(keep: bool) -> None:
        row = team_row()
        started = clock()
        async with db.write() as conn:
            await conn.execute(_INSERT_TEAM, row)
            before = clock()
            await audit.append(conn, team_entry(row["id"], row["name"]))
            appended = clock()
        if keep:
            samples["append"].append(appended - before)
            samples["with"].append(clock() - started)

    async def without_append(keep: bool) -> None:
        row = team_row()
        started = clock()
        async with db.write() as conn:
            await conn.execute(_INSERT_TEAM, row)
        if keep:
            samples["without"].append(clock() - started)

    async def floor(keep: bool) -> None:
        async with db.write() as conn:
            before = clock()
            await conn.execute(SELECT_1)
            await conn.execute(SELECT_1)
            done = clock()
        if keep:
            samples["floor"].append(done - before)

    async def own(keep: bool) -> None:
        row = team_row()  # an entry like the others; nothing else changes with it
        started = clock()
        await audit.record(team_entry(row["id"], row["name"]))
        if keep:
            samples["own"].append(clock() - started)

    variants: list[Callable[[bool], Awaitable[None]]] = [
        with_append,
        without_append,
        floor,
        own,
    ]
    async with db.read() as conn:
        checkpoints_before = len(await audit_repo.checkpoints(conn))
    for i in range(APPEND_WARMUP + n):
        keep = i >= APPEND_WARMUP
        shift = i % len(variants)  # each variant runs first, second, ... in turn
        for variant in variants[shift:] + variants[:shift]:
            await variant(keep)
    async with db.read() as conn:
        checkpoints = len(await audit_repo.checkpoints(conn)) - checkpoints_before
    stats = {k: _ms(v) for k, v in samples.items()}
    added = {q: round(stats["with"][q] - stats["without"][q], 3) for q in ("p50", "p99", "mean")}
    return {
        "n": n,
        "warmup": APPEND_WARMUP,
        "append_in_caller_tx_ms": stats["append"],
        "caller_tx_with_append_ms": stats["with"],
        "caller_tx_without_append_ms": stats["without"],
        "caller_tx_added_ms": added,
        "floor_two_statements_ms": stats["floor"],
        "record_own_tx_ms": stats["own"],
        "checkpoints_signed": checkpoints,
        "checkpoint_every": audit._every,
        "target_p99_ms": APPEND_TARGET_MS,
        "append_passed": stats["append"]["p99"] < APPEND_TARGET_MS,
        "added_passed": added["p99"] < APPEND_TARGET_MS,
        "record_passed": stats["own"]["p99"] < APPEND_TARGET_MS,
    }


# -- background writers, observed --------------------------------------------------------------


class Background:
    """Times the audit writer's group commits and the span store's drains (wrapping them)."""

    def __init__(self, audit: AuditLog, telemetry: Telemetry) -> None:
        self.audit_commits: list[float] = []
        self.audit_batches: list[int] = []
        self.drains: list[float] = []
        self.drain_cpu: list[float] = []
        self.draining = 0
        self._audit = audit
        self._telemetry = telemetry
        queue = audit.queue
        write = queue._write_batch
        drain = telemetry.pipeline.drain

        async def timed_write(items: list[AuditEntry]) -> Any:
            started = time.perf_counter()
            try:
                return await write(items)
            finally:
                self.audit_commits.append(time.perf_counter() - started)
                self.audit_batches.append(len(items))

        async def timed_drain() -> None:
            if not len(telemetry.pipeline):
                await drain()
                return
            self.draining += 1
            started, cpu = time.perf_counter(), time.process_time()
            try:
                await drain()
            finally:
                self.drains.append(time.perf_counter() - started)
                self.drain_cpu.append(time.process_time() - cpu)
                self.draining -= 1

        queue._write_batch = timed_write
        telemetry.pipeline.drain = timed_drain  # type: ignore[method-assign]

    def mark(self) -> tuple[int, int]:
        return len(self.audit_commits), len(self.drains)

    def since(self, mark: tuple[int, int]) -> dict[str, Any]:
        commits, batches = self.audit_commits[mark[0] :], self.audit_batches[mark[0] :]
        drains = self.drains[mark[1] :]
        return {
            "audit_commits": len(commits),
            "audit_records": sum(batches),
            "audit_records_per_commit": round(sum(batches) / len(batches), 1) if batches else None,
            "audit_commit_ms": _ms(commits) if commits else None,
            "audit_commit_s_total": round(sum(commits), 4),
            "span_drains": len(drains),
            "span_drain_ms": _ms(drains) if drains else None,
            "span_drain_s_total": round(sum(drains), 4),
        }

    async def settle(self) -> None:
        """Until every queued audit record and span is committed."""
        queue = self._audit.queue
        pipeline = self._telemetry.pipeline
        while True:
            inflight = queue._inflight
            if (
                queue._queue.empty()
                and (inflight is None or inflight.done())
                and not len(pipeline)
                and not self.draining
            ):
                return
            if len(pipeline) and not self.draining:
                pipeline.ready.set()  # the telemetry task drains now instead of in 0.5 s
            await asyncio.sleep(0.005)


# -- 2. the decision path ------------------------------------------------------------------------


def _model_calls(world_sessions: list[Any], rng: random.Random) -> list[DecisionRequest]:
    picks = rng.sample(world_sessions, SUBJECTS)
    subjects = [s.subject(3 + i % 4) for i, s in enumerate(picks)]  # budgets on 3-6 scopes
    requests = [
        DecisionRequest(
            Act.MODEL_CALL,
            subjects[i % SUBJECTS],
            model=rng.choice(MODELS),
            cost_micros=rng.randint(2_000, 20_000),
        )
        for i in range(1_024)
    ]
    rng.shuffle(requests)
    return requests


async def _decide_block(
    governor: Governor, requests: list[DecisionRequest], start: int, calls: int
) -> tuple[list[int], list[tuple[DecisionRequest, Decision]]]:
    times: list[int] = []
    made: list[tuple[DecisionRequest, Decision]] = []
    clock = time.perf_counter_ns
    ledger = governor.ledger
    for i in range(start, start + calls):
        request = requests[i % len(requests)]
        began = clock()
        decision = await governor.decide(request)
        times.append(clock() - began)
        made.append((request, decision))
        if isinstance(decision.reservation, Reservation):
            ledger.release(decision.reservation)
        await asyncio.sleep(0)  # untimed: the ledger's upkeep and the background writers
    return times, made


class GcClock:
    """Time spent in the garbage collector, and full (generation 2) collections, meanwhile."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._began = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._began
        self.full += info.get("generation") == 2

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._callback)


def server_cpu(db: Database) -> float:
    """CPU seconds every PostgreSQL process on the machine has used so far (0 on SQLite)."""
    if not db.is_postgres:
        return 0.0
    return sum(cpu_seconds(pid) or 0.0 for pid in pids_named("postgres"))


async def measure_decision(
    services: Services, cfg: ObservabilityConfig, background: Background
) -> dict[str, Any]:
    db, governor, audit, telemetry = (
        services.db,
        services.governor,
        services.audit,
        services.telemetry,
    )
    rng = random.Random(7)
    world = build_world(rng)
    await seed(db, world)
    governor.invalidate()
    listeners = list(governor.listeners)
    names = [getattr(fn, "__qualname__", repr(fn)) for fn in listeners]
    if len(listeners) != 2:
        raise RuntimeError(f"expected the audit and telemetry listeners, found {names}")
    requests = _model_calls(world.sessions, rng)
    snap = await governor.snapshot()
    observed = Observed(governor.ledger, db)
    records0, spans0 = await _count(db, t.audit_records), await _count(db, t.spans)
    governor.ledger.start()
    audit.start()
    telemetry.start()

    cursor = 0
    for on in (False, True):  # warm-up: leases every subject's slices, fills the caches
        governor.listeners = listeners if on else []
        await _decide_block(governor, requests, cursor, DECIDE_WARMUP)
        cursor += DECIDE_WARMUP
    await background.settle()

    times: dict[bool, list[int]] = {False: [], True: []}
    cpu = {False: 0.0, True: 0.0}
    server = {False: 0.0, True: 0.0}
    wall = {False: 0.0, True: 0.0}
    gc_s = {False: 0.0, True: 0.0}
    gc_full = {False: 0, True: 0}
    outcomes: Counter[str] = Counter()
    last: list[tuple[DecisionRequest, Decision]] = []
    blocks = max(1, cfg.calls // BLOCK)
    mark, leases = background.mark(), observed.mark()
    with GcClock() as collector:
        for b in range(blocks):
            for on in (False, True) if b % 2 == 0 else (True, False):  # off on, on off, ...
                governor.listeners = listeners if on else []
                cpu0, wall0, server0 = time.process_time(), time.perf_counter(), server_cpu(db)
                gc0, full0 = collector.seconds, collector.full
                got, made = await _decide_block(governor, requests, cursor, BLOCK)
                if on:
                    await background.settle()  # its records and spans are part of its cost
                    last = made
                cpu[on] += time.process_time() - cpu0
                wall[on] += time.perf_counter() - wall0
                server[on] += server_cpu(db) - server0
                gc_s[on] += collector.seconds - gc0
                gc_full[on] += collector.full - full0
                cursor += BLOCK
                times[on] += got
                outcomes.update(d.code for _, d in made)
    window = background.since(mark)
    leased = observed.since(leases)["leases"]
    governor.listeners = listeners

    # Each listener alone on the last block's decisions, then what it queued, committed alone.
    alone: dict[str, Any] = {}
    clock = time.perf_counter_ns
    pairs = (last * (LISTENER_CALLS // len(last) + 1))[:LISTENER_CALLS]
    for name, listener in (("audit", listeners[0]), ("telemetry", listeners[1])):
        spent: list[int] = []
        for request, decision in pairs:
            began = clock()
            listener(request, decision, 2.5e-5)
            spent.append(clock() - began)
        cpu0, server0 = time.process_time(), server_cpu(db)
        await background.settle()
        alone[name] = {
            **_us(spent),
            "background_cpu_us": round((time.process_time() - cpu0) / len(pairs) * 1e6, 2),
            "background_server_cpu_us": round((server_cpu(db) - server0) / len(pairs) * 1e6, 2),
        }
    records = await _count(db, t.audit_records) - records0
    spans = await _count(db, t.spans) - spans0

    n = len(times[True])
    off, on_ = _us(times[False]), _us(times[True])

    def per(values: dict[bool, float], on: bool) -> float:
        return round(values[on] / n * 1e6, 2)

    added = {
        "p50_us": round(on_["p50_us"] - off["p50_us"], 2),
        "p99_us": round(on_["p99_us"] - off["p99_us"], 2),
        "mean_us": round(on_["mean_us"] - off["mean_us"], 2),
        "cpu_us": round(per(cpu, True) - per(cpu, False), 2),
        "server_cpu_us": round(per(server, True) - per(server, False), 2),
        "gc_us": round(per(gc_s, True) - per(gc_s, False), 2),
    }
    parts = {
        "audit_listener_us": alone["audit"]["mean_us"],
        "audit_commit_cpu_us": alone["audit"]["background_cpu_us"],
        "telemetry_listener_us": alone["telemetry"]["mean_us"],
        "span_store_cpu_us": alone["telemetry"]["background_cpu_us"],
    }
    parts["sum_us"] = round(sum(parts.values()), 2)

    def variant(on: bool, stats: dict[str, float]) -> dict[str, Any]:
        return {
            **stats,
            "cpu_us_per_decision": per(cpu, on),
            "server_cpu_us_per_decision": per(server, on),
            "gc_us_per_decision": per(gc_s, on),
            "gc_full_collections": gc_full[on],
            "calls_per_s": round(n / wall[on], 1),
        }

    return {
        "listeners": names,
        "policies": snap.policy_count,
        "budgets": len(snap.budgets_by_id),
        "subjects": SUBJECTS,
        "block": BLOCK,
        "blocks_per_variant": blocks,
        "warmup_per_variant": DECIDE_WARMUP,
        "without": variant(False, off),
        "with": variant(True, on_),
        "added": added,
        "added_pct_of_decide_p50": round(100 * added["p50_us"] / off["p50_us"], 1),
        "listener_alone": alone,
        "cpu_parts_alone": parts,
        "background": window,
        "outcomes": dict(outcomes),
        "decisions": n + len(times[False]),
        "audit_records_written": records,
        "spans_stored": spans,
        "leases_measured": leased,
        "dropped_audit": audit.queue.dropped,
    }


# -- 3. a turn -----------------------------------------------------------------------------------

_WORDS = ("the", "build", "passes", "now;", "I", "changed", "two", "files", "and", "ran",
          "tests", "again,", "all", "green.", "Next", "I'll", "check", "the", "lint", "step")  # fmt: skip


def turn_drafts(turn_id: str, index: int) -> list[EventDraft]:
    """What an OpenCode turn with two tool calls maps to, after its ``turn.started``: 57 drafts,
    60 stored events with ``turn.started`` and the two ``session.state`` the recorder adds."""
    rng = random.Random(index)
    msg = f"msg_obs{index:05d}"
    drafts: list[EventDraft] = []

    def text(part: str, deltas: int) -> None:
        offset, words = 0, []
        for _ in range(deltas):
            chunk = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 4))) + " "
            words.append(chunk)
            data = {"message_id": msg, "part_id": part, "role": "assistant", "channel": "text",
                    "text": chunk}  # fmt: skip
            drafts.append(EventDraft(EventType.MESSAGE_DELTA, data, f"delta:{part}:{offset}",
                                     "message.part.delta"))  # fmt: skip
            offset += len(chunk)
        done = {"message_id": msg, "part_id": part, "role": "assistant", "channel": "text",
                "content": [{"type": "text", "text": "".join(words)}]}  # fmt: skip
        drafts.append(EventDraft(EventType.MESSAGE_COMPLETED, done, f"text:{part}",
                                 "message.part.updated"))  # fmt: skip

    def tool(call: str, command: str) -> None:
        args = {"command": command, "description": f"run {command.split()[0]}"}
        for status, given in (("pending", None), ("running", args)):
            data = {"call_id": call, "name": "bash", "input": given, "kind": "builtin",
                    "status": status}  # fmt: skip
            drafts.append(EventDraft(EventType.TOOL_CALL, data, f"tool:{call}:{status}",
                                     "message.part.updated"))  # fmt: skip
        decision = {"outcome": "allow", "code": "tool_allowed", "reason": "allowed by policy",
                    "policy_id": "pol_obs", "policy_version": 1, "scope": "team:obs",
                    "epoch": 1, "act": "tool.use", "tool": "bash", "call_id": call}  # fmt: skip
        drafts.append(EventDraft(EventType.GOVERNANCE_DECISION, decision))
        output = "\n".join(f"{rng.choice(_WORDS)} {rng.randint(0, 999)}" for _ in range(12))
        result = {"call_id": call, "name": "bash", "output": output, "is_error": False,
                  "truncated": False, "duration_ms": rng.randint(20, 900)}  # fmt: skip
        drafts.append(EventDraft(EventType.TOOL_RESULT, result, f"tool:{call}:done",
                                 "message.part.updated"))  # fmt: skip

    text(f"prt_obs{index:05d}a", 18)
    tool(f"call_obs{index:05d}a", "git status")
    tool(f"call_obs{index:05d}b", "pytest -q tests/unit")
    text(f"prt_obs{index:05d}b", 27)
    usage = {"scope": "request", "cumulative": False, "message_id": msg,
             "model": "anthropic/claude-sonnet-4-5", "input_tokens": 5_210,
             "output_tokens": 412, "reasoning_tokens": 0, "cache_read_tokens": 3_900,
             "cache_write_tokens": 0, "cost_source": "runtime", "cost_usd": 0.0218,
             "cost_micros": 21_800}  # fmt: skip
    drafts.append(EventDraft(EventType.USAGE, usage, f"usage:{msg}", "message.updated"))
    done = {"turn_id": turn_id, "stop_reason": "end_turn"}
    drafts.append(EventDraft(EventType.TURN_COMPLETED, done, turn_end_native_id(turn_id),
                             "session.idle"))  # fmt: skip
    return drafts


async def _start_turn(db: Database, session_id: str) -> tuple[str, list[Event]]:
    """What ``SessionService.send`` writes before handing the input over (see bench/ingest)."""
    turn_id, input_id, now = new_id("turn"), new_id("input"), utcnow()
    async with db.write() as conn:
        locked = await session_repo.get_session(conn, session_id, for_update=True)
        assert locked is not None
        await session_repo.insert_input(
            conn, input_id=input_id, session_id=session_id, turn_id=turn_id, text="go", at=now
        )
        await session_repo.insert_turn(
            conn, turn_id=turn_id, session_id=session_id, ordinal=locked.turns + 1,
            input_id=input_id, at=now, owner="bench-observability",
            lease_until=now + LEASE,
        )  # fmt: skip
        await session_repo.update_session(
            conn, session_id, turns=locked.turns + 1, current_turn_id=turn_id
        )
        started = {"turn_id": turn_id, "input_id": input_id, "text": "run the tests"}
        draft = EventDraft(EventType.TURN_STARTED, started, f"turn-start:{turn_id}")
        stored = await recorder.record(conn, session_id, [draft], turn_id=turn_id, at=now)
    return turn_id, stored


def _renamed(batches: list[list[Event]], turn_id: str) -> list[list[Event]]:
    """The same turn under another id (a closed turn id is never traced again)."""
    out = []
    for batch in batches:
        renamed = []
        for event in batch:
            data = event.data
            if "turn_id" in data:
                data = {**data, "turn_id": turn_id}
            renamed.append(dataclasses.replace(event, turn_id=turn_id, data=data))
        out.append(renamed)
    return out


async def measure_turn(
    services: Services, cfg: ObservabilityConfig, background: Background
) -> dict[str, Any]:
    db, telemetry = services.db, services.telemetry
    assert services.bootstrap is not None
    fleet = await seed_fleet(
        db, org_id=services.bootstrap.org.id, user_id=services.bootstrap.admin.id,
        teams=1, agents_per_team=1,
    )  # fmt: skip
    rng = random.Random(3)
    rows = [
        session_row(
            fleet, fleet.agents[0], state=SessionState.CREATED, created_at=utcnow(), rng=rng
        )
        for _ in range(SESSIONS)
    ]
    async with db.write() as conn:
        await conn.execute(sa.insert(t.sessions), rows)

    # The recording cost: every event of the turn committed as a lone pump commits it.
    recorded: list[tuple[str, list[list[Event]]]] = []
    writes: list[float] = []
    starts: list[float] = []
    clock = time.perf_counter
    cpu0, wall0, server0 = time.process_time(), clock(), server_cpu(db)
    for r in range(cfg.recorded_turns):
        session_id = rows[r % SESSIONS]["id"]
        began = clock()
        turn_id, first = await _start_turn(db, session_id)
        starts.append(clock() - began)
        batches = [first]
        for draft in turn_drafts(turn_id, r):
            began = clock()
            stored = await services.writer.record(session_id, [draft], turn_id=turn_id)
            writes.append(clock() - began)
            if stored:
                batches.append(stored)
        recorded.append((session_id, batches))
    record_cpu, record_wall = time.process_time() - cpu0, clock() - wall0
    record_server = server_cpu(db) - server0
    stored_events = sum(len(b) for _, batches in recorded for b in batches)
    per_turn = {sum(len(b) for b in batches) for _, batches in recorded}
    if per_turn != {TURN_EVENTS}:
        raise RuntimeError(f"a recorded turn should hold {TURN_EVENTS} events, not {per_turn}")

    # The tap: the same batches published with telemetry attached and without.
    traced, bare = EventHub(), EventHub()
    traced.taps.append(telemetry.on_events)
    plans = [
        (sid, _renamed(batches, f"turn_obs{k:05d}"))
        for k, (sid, batches) in ((k, recorded[k % len(recorded)]) for k in range(cfg.turns))
    ]
    spans0, drains0 = await _count(db, t.spans), len(background.drains)
    per_batch: dict[bool, list[int]] = {False: [], True: []}
    per_event: dict[bool, list[float]] = {False: [], True: []}
    per_turn_ns: dict[bool, list[int]] = {False: [], True: []}
    flushes: list[float] = []
    flush_cpu: list[float] = []
    flush_server = 0.0
    ns = time.perf_counter_ns
    for k, (sid, batches) in enumerate(plans):
        for on in (True, False) if k % 2 == 0 else (False, True):
            hub = traced if on else bare
            total = 0
            for batch in batches:
                began = ns()
                hub.publish(sid, batch)
                took = ns() - began
                total += took
                per_batch[on].append(took)
                per_event[on].append(took / len(batch))
            per_turn_ns[on].append(total)
        if (k + 1) % FLUSH_EVERY == 0 or k == len(plans) - 1:
            cpu0, began, server0 = time.process_time(), clock(), server_cpu(db)
            await telemetry.flush(everything=True)
            flushes.append(clock() - began)
            flush_cpu.append(time.process_time() - cpu0)
            flush_server += server_cpu(db) - server0
    spans = await _count(db, t.spans) - spans0
    turns = len(plans)
    drain_s, drain_cpu = sum(background.drains[drains0:]), sum(background.drain_cpu[drains0:])
    close_s = sum(flushes) - drain_s
    close_cpu = sum(flush_cpu) - drain_cpu
    events = sum(len(b) for _, batches in plans for b in batches)
    tap_off = sum(per_turn_ns[False]) / events / 1_000
    tap_on = sum(per_turn_ns[True]) / events / 1_000
    tap_us = tap_on - tap_off
    close_us_per_turn = close_cpu / turns * 1e6
    store_cpu_us_per_turn = drain_cpu / turns * 1e6
    cpu_us_per_turn = tap_us * TURN_EVENTS + close_us_per_turn + store_cpu_us_per_turn
    cpu_us_per_event = cpu_us_per_turn / TURN_EVENTS
    record_cpu_ms = record_cpu / stored_events * 1e3
    return {
        "events_per_turn": TURN_EVENTS,
        "tool_calls_per_turn": 2,
        "recording": {
            "turns": cfg.recorded_turns,
            "events": stored_events,
            "transactions_per_turn": len(turn_drafts("x", 0)) + 1,
            "cpu_ms_per_event": round(record_cpu_ms, 3),
            "server_cpu_ms_per_event": round(record_server / stored_events * 1e3, 3),
            "wall_ms_per_event": round(record_wall / stored_events * 1e3, 3),
            "write_ms": _ms(writes),
            "turn_start_ms": _ms(starts),
        },
        "replayed_turns": turns,
        "events": events,
        "tap_without": {**_us(per_batch[False]), "us_per_event": round(tap_off, 3),
                        "per_event": _us(per_event[False])},
        "tap_with": {**_us(per_batch[True]), "us_per_event": round(tap_on, 3),
                     "per_event": _us(per_event[True])},
        "tap_added_us_per_event": round(tap_us, 3),
        "tap_added_us_per_turn": _us(
            [a - b for a, b in zip(per_turn_ns[True], per_turn_ns[False], strict=True)]
        ),
        "close": {
            "flushes": len(flushes),
            "cpu_us_per_turn": round(close_us_per_turn, 1),
            "wall_us_per_turn": round(close_s / turns * 1e6, 1),
        },
        "store": {
            "spans": spans,
            "spans_per_turn": round(spans / turns, 2),
            "drains": len(background.drains) - drains0,
            "server_cpu_ms_per_turn": round(flush_server / turns * 1e3, 3),
            "wall_ms_per_turn": round(drain_s / turns * 1e3, 3),
            "cpu_ms_per_turn": round(store_cpu_us_per_turn / 1e3, 3),
            "wall_us_per_span": round(drain_s / spans * 1e6, 1) if spans else None,
            "cpu_us_per_span": round(drain_cpu / spans * 1e6, 1) if spans else None,
        },
        "telemetry_cpu_us_per_turn": round(cpu_us_per_turn, 1),
        "telemetry_cpu_us_per_event": round(cpu_us_per_event, 2),
        "pct_of_recording_cpu": round(100 * cpu_us_per_event / (record_cpu_ms * 1e3), 2),
        "pct_of_live_cpu": [
            round(100 * cpu_us_per_event / (ms * 1e3), 2) for ms in reversed(LIVE_CPU_MS_PER_EVENT)
        ],
    }  # fmt: skip


# -- the scenario --------------------------------------------------------------------------------


async def run(
    dbs: Databases, backend: str, workdir: Path, cfg: ObservabilityConfig
) -> dict[str, Any]:
    async with database(dbs, backend, "observability") as url:
        services = await build_services(url, workdir)
        services.db.start_checkpoints()  # as ``Services.start`` does: no commit checkpoints
        try:
            background = Background(services.audit, services.telemetry)
            with one_core() as core:
                out: dict[str, Any] = {"core": core}
                out["audit"] = await measure_audit(services, cfg.appends)
                out["turn"] = await measure_turn(services, cfg, background)
                out["decision"] = await measure_decision(services, cfg, background)
            return out
        finally:
            await services.aclose()


# -- the table and the JSON ----------------------------------------------------------------------


def _node(result: dict[str, Any], *path: str) -> Any:
    node: Any = result.get("observability")
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _verdict(passed: Any) -> str:
    return "-" if passed is None else ("PASS" if passed else "FAIL")


def _n(value: Any, digits: int = 2) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def _ms3(node: Any) -> str:
    if not isinstance(node, dict):
        return "-"
    return f"{_n(node['p50'])} / {_n(node['p99'])} / {_n(node['max'])}"


def _append(r: dict[str, Any]) -> str:
    node = _node(r, "audit")
    if not isinstance(node, dict):
        return "-"
    ms, added = node["append_in_caller_tx_ms"], node["caller_tx_added_ms"]
    return (
        f"{_verdict(node['append_passed'])} ({_n(ms['p99'])}); "
        f"{_verdict(node['added_passed'])} (+{_n(added['p99'])})"
    )


def _tx(r: dict[str, Any]) -> str:
    node = _node(r, "audit")
    if not isinstance(node, dict):
        return "-"
    w, wo, add = (node["caller_tx_with_append_ms"], node["caller_tx_without_append_ms"],
                  node["caller_tx_added_ms"])  # fmt: skip
    return (
        f"{_n(w['p50'])} / {_n(w['p99'])} vs {_n(wo['p50'])} / {_n(wo['p99'])} "
        f"(+{_n(add['p50'])} / +{_n(add['p99'])})"
    )


def _own(r: dict[str, Any]) -> str:
    node = _node(r, "audit")
    if not isinstance(node, dict):
        return "-"
    return f"{_ms3(node['record_own_tx_ms'])} {_verdict(node['record_passed'])}"


def _decide(r: dict[str, Any]) -> str:
    node = _node(r, "decision")
    if not isinstance(node, dict):
        return "-"
    off, on = node["without"], node["with"]
    return (
        f"{_n(off['p50_us'], 1)} / {_n(off['p99_us'], 1)} → "
        f"{_n(on['p50_us'], 1)} / {_n(on['p99_us'], 1)}"
    )


def _added(r: dict[str, Any]) -> str:
    node = _node(r, "decision", "added")
    if not isinstance(node, dict):
        return "-"
    server = f" (+{_n(node['server_cpu_us'], 0)} server)" if node.get("server_cpu_us") else ""
    return f"{_n(node['p50_us'], 1)} / {_n(node['p99_us'], 1)}; {_n(node['cpu_us'], 1)}{server}"


def _parts(r: dict[str, Any]) -> str:
    node = _node(r, "decision", "cpu_parts_alone")
    if not isinstance(node, dict):
        return "-"
    return (
        f"{_n(node['audit_listener_us'], 1)} + {_n(node['audit_commit_cpu_us'], 1)} + "
        f"{_n(node['telemetry_listener_us'], 1)} + {_n(node['span_store_cpu_us'], 1)} "
        f"= {_n(node['sum_us'], 1)}"
    )


def _alone(r: dict[str, Any]) -> str:
    node = _node(r, "decision", "listener_alone")
    if not isinstance(node, dict):
        return "-"
    a, tel = node["audit"], node["telemetry"]
    return (
        f"{_n(a['p50_us'], 1)} / {_n(a['p99_us'], 1)}; {_n(tel['p50_us'], 1)} / "
        f"{_n(tel['p99_us'], 1)}"
    )


def _tap(r: dict[str, Any]) -> str:
    node = _node(r, "turn")
    if not isinstance(node, dict):
        return "-"
    off, on = node["tap_without"], node["tap_with"]
    return (
        f"{_n(off['us_per_event'])} → {_n(on['us_per_event'])} "
        f"(p99 {_n(off['per_event']['p99_us'], 1)} → {_n(on['per_event']['p99_us'], 1)})"
    )


def _turn_cpu(r: dict[str, Any]) -> str:
    node = _node(r, "turn")
    if not isinstance(node, dict):
        return "-"
    tap = node["tap_added_us_per_event"] * node["events_per_turn"]
    return (
        f"{_n(node['telemetry_cpu_us_per_turn'], 0)} = tap {_n(tap, 0)} + close "
        f"{_n(node['close']['cpu_us_per_turn'], 0)} + store "
        f"{_n(node['store']['cpu_ms_per_turn'] * 1e3, 0)}"
    )


def _store(r: dict[str, Any]) -> str:
    node = _node(r, "turn", "store")
    if not isinstance(node, dict):
        return "-"
    return f"{_n(node['spans_per_turn'], 0)} spans, {_n(node['wall_ms_per_turn'])} ms"


def _recording(r: dict[str, Any]) -> str:
    node = _node(r, "turn", "recording")
    if not isinstance(node, dict):
        return "-"
    ms = node["write_ms"]
    return f"{_n(node['cpu_ms_per_event'])} ms; {_n(ms['p50'])} / {_n(ms['p99'])} ms"


def _pct(r: dict[str, Any]) -> str:
    node = _node(r, "turn")
    if not isinstance(node, dict):
        return "-"
    live = node["pct_of_live_cpu"]
    return (
        f"{_n(node['telemetry_cpu_us_per_event'], 1)} µs: {_n(node['pct_of_recording_cpu'], 1)}% "
        f"({_n(live[0], 1)}-{_n(live[1], 1)}% of live)"
    )


Row = tuple[str, Callable[[dict[str, Any]], str]]


def table_rows(report: dict[str, Any]) -> list[Row]:
    cfg = report["config"]
    appends = f"n={cfg.get('observability_appends', 0):,}"
    calls = f"n={cfg.get('observability_calls', 0):,} each"
    turns = cfg.get("observability_turns", 0)
    return [
        (f"Audit: append() in the caller's write tx p50 / p99 / max ms ({appends})",
         lambda r: _ms3(_node(r, "audit", "append_in_caller_tx_ms"))),
        (f"Audit: p99 < {APPEND_TARGET_MS:.0f} ms: the append() call; what it adds to the "
         "caller's tx (commit included)", _append),
        ("Audit: caller's tx with vs without the append, p50 / p99 ms (added)", _tx),
        ("Audit: floor, two trivial statements in a write tx p50 / p99 / max ms",
         lambda r: _ms3(_node(r, "audit", "floor_two_statements_ms"))),
        (f"Audit: record() in its own tx (commit included) p50 / p99 / max ms, "
         f"p99 < {APPEND_TARGET_MS:.0f} ms", _own),
        (f"Decision: decide() model.call p50 / p99 µs, no listeners → audit + telemetry ({calls})",
         _decide),
        ("Decision: added per decision: latency p50 / p99 µs; process CPU µs, background "
         "writes included", _added),
        ("Decision: CPU µs, each part alone: audit listener + its group commit + telemetry "
         "listener + span store", _parts),
        ("Decision: listener alone p50 / p99 µs: audit queue; telemetry", _alone),
        (f"Turn ({TURN_EVENTS} events, 2 tool calls, usage; {turns} replays): hub publish µs per "
         "event, no tap → telemetry tap", _tap),
        ("Turn: telemetry CPU µs per turn = tap + close (invoke_agent span, metrics) + span store",
         _turn_cpu),
        ("Turn: spans stored per turn, store time (background) per turn", _store),
        ("Turn: recording through EventWriter, 1 tx per event: CPU per event; write p50 / p99",
         _recording),
        ("Turn: telemetry CPU per event, % of recording CPU (% of live 2.5-1.6 ms/event)", _pct),
    ]  # fmt: skip


def save(report: dict[str, Any], path: Path) -> None:
    """The observability part of a run's report, on its own."""
    keep = ("started_at", "quick", "config", "machine", "skipped", "seconds")
    out = {k: report[k] for k in keep if k in report}
    out["config"] = {k: v for k, v in report["config"].items() if k.startswith("observability")}
    out["results"] = {
        b: r["observability"] for b, r in report["results"].items() if "observability" in r
    }
    out["errors"] = {k: v for k, v in report["errors"].items() if "observability" in k}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
