"""The ``governance`` scenario: ``evaluate()``, ``Governor.decide()`` and the budget ledger.

Corral's governance runs in the benchmark process against a fresh database per backend, seeded
with 1,000 policies and 10,000 budgets spread over 20 orgs, 80 teams, 240 agents, 960 users and
keys and 7,740 sessions. Each org has 5 tool rules (argument matchers among them), a model and a
runtime allowlist and a limits policy; each team 3 tool rules and a model allowlist; each agent
2 tool rules; 40 keys a limits policy. Budgets: org and team monthly (soft alert at 80%), agent
and key daily, user monthly, session total; a few orgs keep theirs in a local timezone.

1. ``evaluate()`` on the compiled snapshot, per act (``tool.use``, ``message.send``,
   ``model.call``), each request from a random session (all six scopes): per-call time with
   ``time.perf_counter_ns`` after a warm-up.
2. ``Governor.decide()`` for ``model.call`` with ``cost_micros`` set, one call after the other
   from 64 subjects with budgets on 3 to 6 scopes, snapshot warm: evaluate plus the ledger
   reservation from slices leased from the database (leases are counted and timed; only
   ``decide()`` itself is timed). First with each reservation released (the warm path, the
   target), then for a while with each settled at its real cost in the background (group
   commit), so slices drain and are leased again as in production.
3. Ledger throughput: one coroutine per subject (64), each a reserve of the worst case on its
   subject's 3-6 budget windows then a settle of the real cost, for a fixed time, with
   ``ledger.start()`` so settlements group-commit. Then ``aclose()`` and a check against the
   database: every window's ``spent`` equals the sum of the costs settled on it (phases 2 and
   3), ``reserved`` is 0 and no hold is left.

All of it runs with the benchmark process (its threads too, so SQLite's) pinned to one core.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.harness import Databases, Latency, database, percentile
from corral.domain.governance import (
    Act,
    Counters,
    DecisionRequest,
    PolicyKind,
    ScopeKind,
    Subject,
)
from corral.governance.decide import budget_windows, budgets_for, evaluate
from corral.governance.governor import Governor
from corral.governance.ledger import BudgetLedger, Part, Reservation, Shortfall
from corral.governance.rules.tools import tool_use
from corral.governance.snapshot import Snapshot
from corral.store import migrate
from corral.store import tables as t
from corral.store.db import Database
from corral.store.types import utcnow

ORGS = 20
TEAMS_PER_ORG = 4
AGENTS_PER_TEAM = 3
USERS_PER_TEAM = 12  # one key each
POLICIES = 1_000
BUDGETS = 10_000
KEY_LIMIT_POLICIES = 40  # tops the per-scope policies up to POLICIES
CORE = 0  # pinned to this core (or the lowest one the process may use)
DECIDE_TARGET_US = 100.0
LEDGER_TARGET_PER_S = 2_000.0
EVALUATE_WARMUP = 2_000
DECIDE_WARMUP = 2_000
DECIDE_SETTLED_WARMUP = 500
LEDGER_WARMUP_S = 1.0
MAX_BACKGROUND_SETTLES = 256
ACTS = (Act.TOOL_USE, Act.MESSAGE_SEND, Act.MODEL_CALL)
MODELS = ("claude-sonnet-4-5", "gpt-4.1-mini", "claude-haiku-4-5-20251001")

#: (tool name, arguments) a tool-use request may carry: allowed, asked, denied, or no rule.
TOOL_CALLS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Read", {"path": "src/app.py"}),
    ("Bash", {"command": "git status"}),
    ("Bash", {"command": "curl https://example.com/data.json"}),
    ("Bash", {"command": "rm -rf /tmp/build"}),
    ("Write", {"path": "/etc/hosts", "content": "x"}),
    ("Write", {"path": "src/new.py", "content": "x"}),
    ("mcp__github__create_issue", {"repo": "acme/prod-api", "title": "t"}),
    ("mcp__github__list_issues", {"repo": "acme/web"}),
    ("mcp__jira__search", {"jql": "project = OPS"}),
    ("WebFetch", {"url": "https://internal.acme.dev/wiki"}),
)

ORG_TOOL_RULES: tuple[dict[str, Any], ...] = (
    {"effect": "deny", "tools": ["Bash"], "arguments": {"command": {"prefix": "rm -rf"}}},
    {"effect": "ask", "tools": ["Write", "Edit"], "arguments": {"path": {"glob": "/etc/*"}}},
    {"effect": "deny", "servers": ["untrusted-*"]},
    {"effect": "allow", "tools": ["Read", "Grep", "Glob", "LS"]},
    {"effect": "ask", "tools": ["mcp__github__*"],
     "arguments": {"repo": {"regex": "acme/(prod|infra)-.*"}},
     "approvers": {"roles": ["team_admin"]}},
)  # fmt: skip
TEAM_TOOL_RULES: tuple[dict[str, Any], ...] = (
    {"effect": "deny", "tools": ["WebFetch"], "arguments": {"url": {"glob": "*://internal.*"}}},
    {"effect": "allow", "tools": ["Bash"], "arguments": {"command": {"prefix": "git "}}},
    {"effect": "ask", "tools": ["Bash"], "arguments": {"command": {"regex": r".*\b(curl|wget)\b.*"}}},
)  # fmt: skip
AGENT_TOOL_RULES: tuple[dict[str, Any], ...] = (
    {"effect": "allow", "tools": ["mcp__jira__*"]},
    {"effect": "deny", "tools": ["Bash"], "arguments": {"command": {"equals": "shutdown -h now"}}},
)
ORG_MODELS = {"effect": "allow", "models": ["claude-*", "gpt-4*", "gpt-5*"]}
TEAM_MODELS = {"effect": "allow", "models": ["claude-sonnet-*", "claude-haiku-*", "gpt-4.1*"]}
ORG_RUNTIMES = {"effect": "allow", "runtimes": ["rt_*"]}
ORG_LIMITS = {"max_open_sessions": 1000, "max_running_turns": 500,
              "max_tool_calls_per_turn": 200, "max_turn_seconds": 1800}  # fmt: skip
KEY_LIMITS = {"max_tool_calls_per_session": 500}
#: (scope kind, period, limit in USD, soft alert %) of the budgets on each kind of scope.
BUDGET_SHAPES = {
    ScopeKind.ORG: ("monthly", 50_000, 80),
    ScopeKind.TEAM: ("monthly", 5_000, 80),
    ScopeKind.AGENT: ("daily", 500, None),
    ScopeKind.USER: ("monthly", 200, None),
    ScopeKind.KEY: ("daily", 50, None),
    ScopeKind.SESSION: ("total", 20, None),
}
ORG_TIMEZONES = ("UTC", "UTC", "Europe/Paris", "America/New_York")


@dataclass(frozen=True)
class GovernanceConfig:
    calls: int = 30_000  # evaluate() calls per act, and decide() calls
    seconds: float = 8.0  # ledger throughput run
    concurrency: int = 64


@dataclass(frozen=True, slots=True)
class Session:
    org: str
    team: str
    agent: str
    user: str
    key: str
    id: str

    def subject(self, scopes: int = 6) -> Subject:
        """The session's subject with its first ``scopes`` scopes (3: org, team, agent)."""
        return Subject(
            self.org,
            self.team,
            self.agent,
            user_id=self.user if scopes >= 4 else None,
            key_id=self.key if scopes >= 5 else None,
            session_id=self.id if scopes >= 6 else None,
        )


# -- the data set ---------------------------------------------------------------------------


@dataclass
class World:
    orgs: list[str]
    sessions: list[Session]
    rows: dict[str, list[dict[str, Any]]]


def build_world(rng: random.Random) -> World:
    now = utcnow()
    policies: list[dict[str, Any]] = []
    budgets: list[dict[str, Any]] = []
    orgs = [f"org_bench{i:03d}" for i in range(ORGS)]
    teams: list[tuple[str, str]] = []  # (org, team)
    agents: dict[str, list[str]] = {}
    users: dict[str, list[tuple[str, str]]] = {}  # team -> (user, key)

    def policy(
        org: str, kind: ScopeKind, scope: str, pkind: PolicyKind, body: dict[str, Any]
    ) -> None:
        policies.append(
            {
                "id": f"pol_bench{len(policies):05d}",
                "org_id": org,
                "scope_kind": kind.value,
                "scope_id": scope,
                "kind": pkind.value,
                "body": body,
                "version": 1,
                "enabled": True,
                "description": None,
                "created_by": None,
                "created_at": now,
                "updated_at": now,
            }
        )

    def budget(org: str, kind: ScopeKind, scope: str, tz: str = "UTC") -> None:
        period, usd, soft = BUDGET_SHAPES[kind]
        budgets.append(
            {
                "id": f"bud_bench{len(budgets):06d}",
                "org_id": org,
                "scope_kind": kind.value,
                "scope_id": scope,
                "limit_micros": usd * 1_000_000,
                "period": period,
                "timezone": tz,
                "soft_percent": soft,
                "version": 1,
                "created_by": None,
                "created_at": now,
                "updated_at": now,
            }
        )

    for o, org in enumerate(orgs):
        for body in ORG_TOOL_RULES:
            policy(org, ScopeKind.ORG, org, PolicyKind.TOOL, body)
        policy(org, ScopeKind.ORG, org, PolicyKind.MODEL, ORG_MODELS)
        policy(org, ScopeKind.ORG, org, PolicyKind.RUNTIME, ORG_RUNTIMES)
        policy(org, ScopeKind.ORG, org, PolicyKind.LIMITS, ORG_LIMITS)
        budget(org, ScopeKind.ORG, org, ORG_TIMEZONES[o % len(ORG_TIMEZONES)])
        for tm in range(TEAMS_PER_ORG):
            team = f"team_bench{o:03d}x{tm}"
            teams.append((org, team))
            for body in TEAM_TOOL_RULES:
                policy(org, ScopeKind.TEAM, team, PolicyKind.TOOL, body)
            policy(org, ScopeKind.TEAM, team, PolicyKind.MODEL, TEAM_MODELS)
            budget(org, ScopeKind.TEAM, team)
            agents[team] = [f"agt_bench{o:03d}x{tm}x{a}" for a in range(AGENTS_PER_TEAM)]
            for agent in agents[team]:
                for body in AGENT_TOOL_RULES:
                    policy(org, ScopeKind.AGENT, agent, PolicyKind.TOOL, body)
                budget(org, ScopeKind.AGENT, agent)
            users[team] = [
                (f"usr_bench{o:03d}x{tm}x{u:02d}", f"key_bench{o:03d}x{tm}x{u:02d}")
                for u in range(USERS_PER_TEAM)
            ]
            for user, key in users[team]:
                budget(org, ScopeKind.USER, user)
                budget(org, ScopeKind.KEY, key)
    keys = [(org, key) for org, team in teams for _, key in users[team]]
    for org, key in keys[:KEY_LIMIT_POLICIES]:
        policy(org, ScopeKind.KEY, key, PolicyKind.LIMITS, KEY_LIMITS)
    sessions: list[Session] = []
    while len(budgets) < BUDGETS:
        org, team = teams[len(sessions) % len(teams)]
        user, key = rng.choice(users[team])
        session = Session(
            org, team, rng.choice(agents[team]), user, key, f"ses_bench{len(sessions):06d}"
        )
        sessions.append(session)
        budget(org, ScopeKind.SESSION, session.id)
    assert len(policies) == POLICIES, len(policies)
    prices = [
        {
            "org_id": org,
            "model": model,
            "input_micros": inp,
            "output_micros": out,
            "cache_read_micros": None,
            "cache_write_micros": None,
            "updated_at": now,
        }
        for org in orgs[::2]
        for model, inp, out in (
            ("claude-sonnet-4-5", 2_700_000, 13_500_000),
            ("acme-internal-llm", 500_000, 1_500_000),
        )
    ]
    org_rows = [{"id": org, "name": f"bench {org}", "created_at": now} for org in orgs]
    return World(
        orgs,
        sessions,
        {"orgs": org_rows, "policies": policies, "budgets": budgets, "model_prices": prices},
    )


async def seed(db: Database, world: World) -> None:
    async with db.write() as conn:
        for name in ("orgs", "policies", "budgets", "model_prices"):
            rows = world.rows[name]
            for start in range(0, len(rows), 2_000):
                await conn.execute(sa.insert(t.metadata.tables[name]), rows[start : start + 2_000])
        await conn.execute(
            sa.update(t.governance_epoch).values(epoch=t.governance_epoch.c.epoch + 1)
        )


# -- requests -------------------------------------------------------------------------------


def _request(act: Act, session: Session, rng: random.Random, scopes: int = 6) -> DecisionRequest:
    subject = session.subject(scopes)
    if act is Act.TOOL_USE:
        name, arguments = rng.choice(TOOL_CALLS)
        counters = Counters(session_turns=3, turn_tool_calls=4, session_tool_calls=20)
        return DecisionRequest(
            act, subject, tool=tool_use(name, None, arguments), counters=counters
        )
    if act is Act.MESSAGE_SEND:
        counters = Counters(
            session_turns=rng.randint(0, 20),
            session_cost_micros=rng.randint(0, 2_000_000),
            running_turns={f"org:{session.org}": rng.randint(0, 50)},
        )
        return DecisionRequest(
            act,
            subject,
            runtime_id="rt_bench",
            runtime_kind="opencode",
            model=rng.choice(MODELS),
            counters=counters,
        )
    worst = rng.randint(2_000, 20_000)
    return DecisionRequest(act, subject, model=rng.choice(MODELS), cost_micros=worst)


def _us(ns: Sequence[int]) -> dict[str, float]:
    us = [n / 1_000 for n in ns]
    return {
        "n": len(us),
        "p50_us": round(percentile(us, 50), 2),
        "p99_us": round(percentile(us, 99), 2),
        "max_us": round(max(us), 2),
        "mean_us": round(sum(us) / len(us), 2),
    }


def measure_evaluate(
    snap: Snapshot, world: World, calls: int, rng: random.Random
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for act in ACTS:
        requests = [_request(act, rng.choice(world.sessions), rng) for _ in range(1_000)]
        for i in range(EVALUATE_WARMUP):
            evaluate(snap, requests[i % len(requests)])
        times: list[int] = []
        outcomes: Counter[str] = Counter()
        clock = time.perf_counter_ns
        for i in range(calls):
            request = requests[i % len(requests)]
            start = clock()
            decision = evaluate(snap, request)
            times.append(clock() - start)
            outcomes[decision.code] += 1
        out[act.value] = {**_us(times), "outcomes": dict(outcomes)}
    return out


# -- the ledger, observed -------------------------------------------------------------------


class Observed:
    """Counts and times the ledger's leases and group commits (wrapping its private steps)."""

    def __init__(self, ledger: BudgetLedger, db: Database) -> None:
        self.statements = 0
        self.leases = 0
        self.lease_s: list[float] = []
        self.commits = 0
        self.batch_sizes: list[int] = []
        self.commit_s: list[float] = []
        lease, drain = ledger._lease, ledger._drain

        async def counted_lease(short: list[Part]) -> Shortfall | None:
            self.leases += 1
            started = time.perf_counter()
            try:
                return await lease(short)
            finally:
                self.lease_s.append(time.perf_counter() - started)

        async def counted_drain() -> None:
            batch = len(ledger._pending)
            started = time.perf_counter()
            await drain()
            if batch:
                self.commits += 1
                self.batch_sizes.append(batch)
                self.commit_s.append(time.perf_counter() - started)

        def statement(*_: Any) -> None:
            self.statements += 1

        ledger._lease = counted_lease  # type: ignore[method-assign]
        ledger._drain = counted_drain  # type: ignore[method-assign]
        sa.event.listen(db.engine.sync_engine, "before_cursor_execute", statement)

    def mark(self) -> tuple[int, ...]:
        return self.leases, len(self.lease_s), self.commits, len(self.commit_s), self.statements

    def since(self, mark: tuple[int, ...]) -> dict[str, Any]:
        leases, lease_n, commits, commit_n, statements = mark
        sizes = self.batch_sizes[commit_n:]
        return {
            "statements": self.statements - statements,
            "leases": self.leases - leases,
            "lease_ms": _latency(self.lease_s[lease_n:]),
            "commits": self.commits - commits,
            "settlements_per_commit": round(sum(sizes) / len(sizes), 1) if sizes else None,
            "settlements_per_commit_max": max(sizes) if sizes else None,
            "commit_ms": _latency(self.commit_s[commit_n:]),
        }


def _latency(seconds: list[float]) -> dict[str, float] | None:
    """Milliseconds, or None when nothing happened (no NaN in the JSON)."""
    return Latency.of(seconds).as_dict() if seconds else None


Spent = dict[tuple[str, datetime], int]


def _book(expected: Spent, reservation: Reservation, cost: int) -> None:
    for p in reservation.parts:
        expected[(p.account, p.window)] += p.amount if p.fixed else cost


def _real_cost(worst: int, rng: random.Random) -> int:
    return int(worst * rng.uniform(0.3, 1.0))


async def measure_decide(
    governor: Governor,
    observed: Observed,
    subjects: list[tuple[Session, int]],
    expected: Spent,
    rng: random.Random,
    *,
    settle: bool,
    calls: int = 0,
    seconds: float = 0.0,
    warmup: int = DECIDE_WARMUP,
) -> dict[str, Any]:
    """``decide()`` one call after the other: ``calls`` of them, or for ``seconds``.

    After each decision (untimed) the reservation is released (``settle=False``: the slices
    stay as leased, the warm path) or settled at its real cost in the background
    (``settle=True``: slices drain and are leased again, as in production).
    """
    ledger = governor.ledger
    requests = []
    for _ in range(4):
        for session, scopes in subjects:
            request = _request(Act.MODEL_CALL, session, rng, scopes)
            requests.append((request, _real_cost(request.cost_micros or 0, rng)))
    rng.shuffle(requests)
    background: set[asyncio.Task[None]] = set()
    times: list[int] = []
    parts: list[int] = []
    by_parts: dict[int, list[int]] = defaultdict(list)
    outcomes: Counter[str] = Counter()
    clock = time.perf_counter_ns
    mark = observed.mark()
    warm: dict[str, Any] = {}
    started = deadline = 0.0
    i = 0
    while True:
        if i == warmup:
            warm = observed.since(mark)
            mark = observed.mark()
            started = time.perf_counter()
            deadline = started + seconds
        if i >= warmup and (i - warmup >= calls if calls else time.perf_counter() >= deadline):
            break
        request, cost = requests[i % len(requests)]
        start = clock()
        decision = await governor.decide(request)
        elapsed = clock() - start
        outcomes[decision.code] += 1
        reservation = decision.reservation
        if i >= warmup:
            times.append(elapsed)
            if isinstance(reservation, Reservation):
                parts.append(len(reservation.parts))
                by_parts[len(reservation.parts)].append(elapsed)
        i += 1
        if not isinstance(reservation, Reservation):
            continue
        if not settle:
            ledger.release(reservation)
        else:
            _book(expected, reservation, cost)
            task = asyncio.create_task(ledger.settle(reservation, cost))
            background.add(task)
            task.add_done_callback(background.discard)
        # Untimed: the ledger's upkeep and group commits run here, between decisions.
        await asyncio.sleep(0)
        if len(background) >= MAX_BACKGROUND_SETTLES:
            await asyncio.wait(background)
    await asyncio.gather(*background)
    wall = time.perf_counter() - started
    window = observed.since(mark)
    return {
        **_us(times),
        "target_p99_us": DECIDE_TARGET_US,
        "passed": percentile([n / 1_000 for n in times], 99) < DECIDE_TARGET_US,
        "settled": settle,
        "subjects": len(subjects),
        "parts_mean": round(sum(parts) / len(parts), 2) if parts else None,
        "by_parts": {str(n): _us(by_parts[n]) for n in sorted(by_parts)},
        "outcomes": dict(outcomes),
        "calls_per_s": round(len(times) / wall, 1),
        "leased_share": round(window["leases"] / len(times), 4) if times else None,
        "warmup": {"calls": warmup, **warm},
        **window,
    }


async def measure_ledger(
    governor: Governor,
    observed: Observed,
    subjects: list[tuple[Session, int]],
    cfg: GovernanceConfig,
    expected: Spent,
    rng: random.Random,
) -> dict[str, Any]:
    ledger = governor.ledger
    snap = governor.current
    assert snap is not None
    now = utcnow()
    # (account, window, limit, version) of each subject's budgets, as decide() would find them.
    accounts = [
        [
            (f"budget:{b.id}", w, b.limit_micros, b.version)
            for b, w in budget_windows(
                budgets_for(snap, DecisionRequest(Act.MODEL_CALL, s.subject(n))), now
            )
        ]
        for s, n in subjects
    ]
    settle_s: list[float] = []
    done = 0
    shortfalls = 0
    measuring = False
    stop = False

    async def worker(index: int) -> None:
        nonlocal done, shortfalls
        wrng = random.Random(index)
        mine = accounts[index :: cfg.concurrency] or [accounts[index % len(accounts)]]
        i = 0
        while not stop:
            worst = wrng.randint(2_000, 20_000)
            got = await ledger.reserve(
                [Part(a, w, lim, worst, version=v) for a, w, lim, v in mine[i % len(mine)]], 600.0
            )
            i += 1
            if isinstance(got, Shortfall):
                shortfalls += 1
                await asyncio.sleep(0)
                continue
            cost = _real_cost(worst, wrng)
            _book(expected, got, cost)
            start = time.perf_counter()
            await ledger.settle(got, cost)
            if measuring:  # pairs completed in the measured window
                settle_s.append(time.perf_counter() - start)
                done += 1

    workers = [asyncio.create_task(worker(i)) for i in range(cfg.concurrency)]
    try:
        await asyncio.sleep(LEDGER_WARMUP_S)
        mark = observed.mark()
        cpu0, started = time.process_time(), time.perf_counter()
        measuring = True
        await asyncio.sleep(cfg.seconds)
        measuring = False
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu0
        window = observed.since(mark)
        stop = True
        await asyncio.gather(*workers)
    finally:
        stop = True
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    rate = done / wall
    window["statements_per_pair"] = round(window["statements"] / done, 1) if done else None
    return {
        "seconds": round(wall, 2),
        "concurrency": cfg.concurrency,
        "pairs": done,
        "pairs_per_s": round(rate, 1),
        "target_pairs_per_s": LEDGER_TARGET_PER_S,
        "passed": rate >= LEDGER_TARGET_PER_S,
        "parts_mean": round(sum(len(a) for a in accounts) / len(accounts), 2),
        "shortfalls": shortfalls,
        "settle_ms": _latency(settle_s),
        "process_cpu_share": round(cpu / wall, 2),
        **window,
    }


async def verify(db: Database, expected: Spent) -> dict[str, Any]:
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(t.ledger_windows))).all()
        holds = (
            await conn.execute(sa.select(sa.func.count()).select_from(t.ledger_holds))
        ).scalar_one()
    found = {(r.account, r.window_start): (int(r.spent), int(r.reserved)) for r in rows}
    wrong = [k for k, v in expected.items() if found.get(k, (0, 0))[0] != v]
    reserved = sum(r for _, r in found.values())
    extra = [k for k, (s, _) in found.items() if k not in expected and s != 0]
    return {
        "windows": len(expected),
        "settled_micros": sum(expected.values()),
        "spent_micros": sum(s for s, _ in found.values()),
        "windows_wrong": len(wrong) + len(extra),
        "reserved_after_close": reserved,
        "holds_after_close": int(holds),
        "passed": not wrong and not extra and reserved == 0 and holds == 0,
    }


# -- pinning --------------------------------------------------------------------------------


@contextlib.contextmanager
def one_core() -> Iterator[int | None]:
    """Pin every thread of this process (and those it starts meanwhile) to one core."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    allowed = os.sched_getaffinity(0)
    core = CORE if CORE in allowed else min(allowed)
    saved: dict[int, set[int]] = {}
    for tid in map(int, os.listdir("/proc/self/task")):
        with contextlib.suppress(OSError):
            saved[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, {core})
    try:
        yield core
    finally:
        for tid in map(int, os.listdir("/proc/self/task")):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, saved.get(tid, allowed))


# -- the scenario ---------------------------------------------------------------------------


async def run(dbs: Databases, backend: str, workdir: Path, cfg: GovernanceConfig) -> dict[str, Any]:
    del workdir  # the SQLite file lives in the directory ``dbs`` makes for it
    rng = random.Random(7)
    world = build_world(rng)
    async with database(dbs, backend, "governance") as url:
        db = Database(url)
        try:
            await migrate.upgrade(db)
            seed_started = time.perf_counter()
            await seed(db, world)
            seeded = time.perf_counter() - seed_started
            ledger = BudgetLedger(db, f"bench-{backend}")
            governor = Governor(db, ledger)
            observed = Observed(ledger, db)
            expected: Spent = defaultdict(int)
            # One subject per ledger coroutine (decide() cycles over the same ones).
            picks = rng.sample(world.sessions, cfg.concurrency)
            subjects = [(s, 3 + i % 4) for i, s in enumerate(picks)]  # 3-6 scopes
            with one_core() as core:
                started = time.perf_counter()
                snap = await governor.snapshot()
                load_ms = (time.perf_counter() - started) * 1000
                out: dict[str, Any] = {
                    "core": core,
                    "data": {
                        "policies": snap.policy_count,
                        "budgets": len(snap.budgets_by_id),
                        "orgs": ORGS,
                        "sessions": len(world.sessions),
                        "seed_seconds": round(seeded, 2),
                    },
                    "snapshot_load_ms": round(load_ms, 1),
                    "evaluate": measure_evaluate(snap, world, cfg.calls, rng),
                }
                ledger.start()
                try:
                    out["decide"] = await measure_decide(
                        governor,
                        observed,
                        subjects,
                        expected,
                        rng,
                        settle=False,
                        calls=cfg.calls,
                        warmup=len(subjects) * 4 + DECIDE_WARMUP,
                    )
                    out["decide_settled"] = await measure_decide(
                        governor,
                        observed,
                        subjects,
                        expected,
                        rng,
                        settle=True,
                        seconds=cfg.seconds,
                        warmup=DECIDE_SETTLED_WARMUP,
                    )
                    out["ledger"] = await measure_ledger(
                        governor, observed, subjects, cfg, expected, rng
                    )
                finally:
                    await ledger.aclose()
            out["ledger"]["exact"] = await verify(db, expected)
            return out
        finally:
            await db.dispose()


# -- the table and the JSON -----------------------------------------------------------------


def _node(result: dict[str, Any], *path: str) -> Any:
    node: Any = result.get("governance")
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _triple(node: Any) -> str:
    if not isinstance(node, dict) or "p50_us" not in node:
        return "-"
    return f"{node['p50_us']:,.1f} / {node['p99_us']:,.1f} / {node['max_us']:,.0f}"


def _verdict(passed: Any) -> str:
    return "-" if passed is None else ("PASS" if passed else "FAIL")


def _decide_target(r: dict[str, Any]) -> str:
    node = _node(r, "decide")
    if not isinstance(node, dict):
        return "-"
    return f"{_verdict(node.get('passed'))} ({node['p99_us']:,.1f} µs)"


def _leases(r: dict[str, Any]) -> str:
    node = _node(r, "decide")
    if not isinstance(node, dict):
        return "-"
    return f"{node['warmup']['leases']} / {node['leases']}"


def _settled(r: dict[str, Any]) -> str:
    node = _node(r, "decide_settled")
    if not isinstance(node, dict) or "p50_us" not in node:
        return "-"
    lease = node["lease_ms"]
    took = f" (p50 {lease['p50']:,.1f} ms)" if lease else ""
    return f"{_triple(node)}; {node['leases']} leases in {node['n']:,} calls{took}"


def _pairs(r: dict[str, Any]) -> str:
    node = _node(r, "ledger")
    if not isinstance(node, dict):
        return "-"
    return f"{node['pairs_per_s']:,.0f} {_verdict(node.get('passed'))}"


def _settle(r: dict[str, Any]) -> str:
    node = _node(r, "ledger", "settle_ms")
    if not isinstance(node, dict):
        return "-"
    return f"{node['p50']:,.2f} / {node['p99']:,.2f}"


def _commits(r: dict[str, Any]) -> str:
    node = _node(r, "ledger")
    if not isinstance(node, dict) or not node.get("commits") or not node.get("commit_ms"):
        return "-"
    ms = node["commit_ms"]
    return (
        f"{node['settlements_per_commit']:,.1f} per commit; {ms['p50']:,.1f} / {ms['p99']:,.1f} ms"
    )


def _exact(r: dict[str, Any]) -> str:
    node = _node(r, "ledger", "exact")
    if not isinstance(node, dict):
        return "-"
    return f"{_verdict(node['passed'])} ({node['windows']:,} windows)"


Row = tuple[str, Any]


def table_rows(report: dict[str, Any]) -> list[Row]:
    cfg = report["config"]
    n = f"n={cfg.get('governance_calls', 0):,}"
    conc = cfg.get("governance_concurrency", 64)
    rows: list[Row] = [
        (
            f"Governance: snapshot load + compile, {POLICIES:,} policies + {BUDGETS:,} budgets (ms)",
            lambda r: _fmt(_node(r, "snapshot_load_ms")),
        ),
    ]
    for act in ACTS:
        rows.append(
            (
                f"Governance: evaluate() {act.value} p50 / p99 / max µs ({n})",
                lambda r, a=act.value: _triple(_node(r, "evaluate", a)),
            )
        )
    rows += [
        (
            f"Governance: decide() model.call + reservation on 3-6 budgets p50 / p99 / max µs ({n})",
            lambda r: _triple(_node(r, "decide")),
        ),
        (f"Governance: decide() p99 < {DECIDE_TARGET_US:.0f} µs", _decide_target),
        ("Governance: decide() DB leases, warm-up / measured", _leases),
        (
            "Governance: decide() with each reservation settled (background) p50 / p99 / max µs; "
            "leases",
            _settled,
        ),
        (
            f"Governance: ledger reserve+settle pairs/s, {conc} coroutines, one core "
            f"(>= {LEDGER_TARGET_PER_S:,.0f})",
            _pairs,
        ),
        ("Governance: ledger settle p50 / p99 ms", _settle),
        ("Governance: ledger group commit: settlements per commit; commit p50 / p99 ms", _commits),
        ("Governance: ledger exact after aclose(): spent = settled, reserved 0, no holds", _exact),
    ]
    return rows


def _fmt(value: Any) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "-"
    return f"{value:,.1f}"


def save(report: dict[str, Any], path: Path) -> None:
    """The governance part of a run's report, on its own."""
    keep = ("started_at", "quick", "config", "machine", "skipped", "seconds")
    out = {k: report[k] for k in keep if k in report}
    out["config"] = {k: v for k, v in report["config"].items() if k.startswith("governance")}
    out["results"] = {b: r["governance"] for b, r in report["results"].items() if "governance" in r}
    out["errors"] = {k: v for k, v in report["errors"].items() if "governance" in k}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
