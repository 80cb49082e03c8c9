"""Property-based checks of governance against small independent oracles.

Each property recomputes the expected answer its own way (``fnmatch`` for globs, exact fractions
for money, a plain model of a budget for the ledger) and compares it with what Corral says.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.domain.governance import (
    OUTCOME_RANK,
    Act,
    Counters,
    DecisionRequest,
    Outcome,
    Subject,
)
from corral.domain.records import Policy
from corral.governance.decide import evaluate, per_session_limits
from corral.governance.ledger import BudgetLedger, Part, Reservation, Shortfall
from corral.governance.prices import ModelPrice, cost_micros, worst_case_micros
from corral.governance.rules import limits as limit_rules
from corral.governance.rules.tools import tool_use
from corral.governance.snapshot import compile_snapshot
from corral.store import migrate
from corral.store.db import Database
from corral.store.tables import ledger_holds, ledger_windows

T = TypeVar("T")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SUBJECT = Subject(org_id="o1", team_id="t1", agent_id="a1", user_id="u1", key_id="k1")
MINE = ("org:o1", "team:t1", "agent:a1", "key:k1")
#: Scopes of other teams, agents and keys: their rules must never apply to SUBJECT.
OTHERS = ("team:t2", "agent:a2", "key:k2")
_ids = itertools.count()


def policy(scope: str, kind: str, body: dict[str, Any]) -> Policy:
    scope_kind, scope_id = scope.split(":", 1)
    return Policy(
        id=f"p{next(_ids)}", org_id="o1", scope_kind=scope_kind, scope_id=scope_id, kind=kind,
        body=body, version=1, enabled=True, description=None, created_by=None, created_at=T0,
        updated_at=T0,
    )  # fmt: skip


def scope_of(p: Policy) -> str:
    return f"{p.scope_kind}:{p.scope_id}"


# Names over a two-letter alphabet collide often, so rules really do overlap.
names = st.text("ab", min_size=1, max_size=3)
patterns = st.text("ab*?", min_size=1, max_size=3)
scopes = st.sampled_from(MINE + OTHERS)
effects = st.sampled_from(["allow", "ask", "deny"])


# -- tool rules --------------------------------------------------------------------------------


@st.composite
def tool_policies(draw: st.DrawFn, effect: st.SearchStrategy[str] = effects) -> Policy:
    body: dict[str, Any] = {"effect": draw(effect)}
    tools = draw(st.none() | st.lists(patterns, min_size=1, max_size=2))
    servers = draw(st.lists(patterns, min_size=1, max_size=2)) if tools is None else None
    if tools is not None:
        body["tools"] = tools
    if servers is None and draw(st.booleans()):
        servers = draw(st.lists(patterns, min_size=1, max_size=2))
    if servers is not None:
        body["servers"] = servers
    if draw(st.booleans()):
        body["arguments"] = {"cmd": {"prefix": draw(st.text("ab", max_size=2))}}
    return policy(draw(scopes), "tool", body)


@dataclass(frozen=True)
class Use:
    name: str
    server: str | None
    arguments: dict[str, Any]

    def request(self) -> DecisionRequest:
        return DecisionRequest(
            Act.TOOL_USE, SUBJECT, tool=tool_use(self.name, self.server, self.arguments)
        )


uses = st.builds(
    Use,
    names,
    st.none() | names,
    st.fixed_dictionaries({}, optional={"cmd": st.text("ab", max_size=3)}),
)


def oracle_matches(p: Policy, use: Use) -> bool:
    """Whether a tool rule applies, computed from the policy body with ``fnmatch``."""
    if scope_of(p) not in MINE:
        return False
    body = p.body
    if "tools" in body and not any(fnmatchcase(use.name, g) for g in body["tools"]):
        return False
    if "servers" in body and (
        use.server is None or not any(fnmatchcase(use.server, g) for g in body["servers"])
    ):
        return False
    if "arguments" in body:
        prefix = body["arguments"]["cmd"]["prefix"]
        if "cmd" not in use.arguments or not use.arguments["cmd"].startswith(prefix):
            return False
    return True


TOOL_CODES = {Outcome.ALLOW: "tool_allowed", Outcome.ASK: "approval_required",
              Outcome.DENY: "tool_denied"}  # fmt: skip


def decide_tool(policies: list[Policy], use: Use) -> tuple[Outcome, str, str | None]:
    d = evaluate(compile_snapshot(1, policies, [], []), use.request())
    return d.outcome, d.code, d.policy_id


@settings(max_examples=400, deadline=None)
@given(policies=st.lists(tool_policies(), max_size=8), use=uses, data=st.data())
def test_tool_outcome_is_the_strongest_matching_rule(policies, use: Use, data) -> None:
    matching = [p for p in policies if oracle_matches(p, use)]
    outcome, code, policy_id = decide_tool(policies, use)
    if not matching:
        assert (outcome, code, policy_id) == (Outcome.ALLOW, "allowed", None)
    else:
        expected = max((Outcome(p.body["effect"]) for p in matching), key=OUTCOME_RANK.get)
        assert (outcome, code) == (expected, TOOL_CODES[expected])
        assert policy_id in {p.id for p in matching if p.body["effect"] == expected.value}
    shuffled = data.draw(st.permutations(policies))
    assert decide_tool(shuffled, use)[:2] == (outcome, code)


@settings(max_examples=300, deadline=None)
@given(policies=st.lists(tool_policies(), max_size=6), extra=tool_policies(), use=uses)
def test_adding_a_rule_never_weakens_the_outcome(policies, extra: Policy, use: Use) -> None:
    before = decide_tool(policies, use)[0]
    after = decide_tool([*policies, extra], use)[0]
    assert OUTCOME_RANK[after] >= OUTCOME_RANK[before]
    if extra.body["effect"] == "allow":
        assert after is before  # an allow never turns a deny or an ask into an allow
    if oracle_matches(extra, use) and extra.body["effect"] == "deny":
        assert after is Outcome.DENY


@settings(max_examples=200, deadline=None)
@given(
    policies=st.lists(tool_policies(), max_size=6),
    use=uses,
    scope=st.sampled_from(MINE),
    position=st.integers(0, 6),
)
def test_a_matching_deny_anywhere_denies(policies, use: Use, scope: str, position: int) -> None:
    deny = policy(scope, "tool", {"effect": "deny", "tools": [use.name]})
    ordered = [*policies[:position], deny, *policies[position:]]
    assert decide_tool(ordered, use)[:2] == (Outcome.DENY, "tool_denied")


# -- model and runtime lists -------------------------------------------------------------------

UNIVERSE = ["".join(t) for n in (1, 2, 3) for t in itertools.product("ab", repeat=n)]


@st.composite
def list_policies(draw: st.DrawFn, field: str) -> Policy:
    body = {"effect": draw(st.sampled_from(["allow", "deny"])),
            field: draw(st.lists(patterns, min_size=1, max_size=2))}  # fmt: skip
    return policy(draw(scopes), field.removesuffix("s"), body)


def oracle_list_allows(policies: list[Policy], field: str, values: tuple[str, ...]) -> bool:
    """Allowed = (intersection over scopes with allow rules of their union) minus any deny."""

    def hit(p: Policy) -> bool:
        return any(fnmatchcase(v, g) for v in values for g in p.body[field])

    mine = [p for p in policies if scope_of(p) in MINE]
    if any(p.body["effect"] == "deny" and hit(p) for p in mine):
        return False
    for scope in MINE:
        allows = [p for p in mine if scope_of(p) == scope and p.body["effect"] == "allow"]
        if allows and not any(hit(p) for p in allows):
            return False
    return True


@settings(max_examples=300, deadline=None)
@given(policies=st.lists(list_policies("models"), max_size=6))
def test_model_allowlists_intersect_across_scopes(policies: list[Policy]) -> None:
    snap = compile_snapshot(1, policies, [], [])
    for model in UNIVERSE:
        decision = evaluate(snap, DecisionRequest(Act.MODEL_CALL, SUBJECT, model=model))
        assert decision.allowed is oracle_list_allows(policies, "models", (model,)), model
        if decision.allowed:
            assert decision.code == "allowed"
            continue
        # the reason names a scope of the subject whose rules really exclude the model
        assert decision.scope in MINE
        at_scope = [p for p in policies if scope_of(p) == decision.scope]
        if decision.code == "model_denied":
            assert any(p.body["effect"] == "deny" and
                       any(fnmatchcase(model, g) for g in p.body["models"]) for p in at_scope)  # fmt: skip
        else:
            assert decision.code == "model_not_allowed"
            allows = [p for p in at_scope if p.body["effect"] == "allow"]
            assert allows
            assert not any(fnmatchcase(model, g) for p in allows for g in p.body["models"])


@settings(max_examples=200, deadline=None)
@given(
    policies=st.lists(list_policies("runtimes"), max_size=6),
    runtime_id=st.sampled_from(UNIVERSE),
    kind=st.sampled_from(UNIVERSE),
)
def test_runtime_lists_match_id_or_kind(policies, runtime_id: str, kind: str) -> None:
    snap = compile_snapshot(1, policies, [], [])
    request = DecisionRequest(Act.SESSION_CREATE, SUBJECT, runtime_id=runtime_id,
                              runtime_kind=kind)  # fmt: skip
    expected = oracle_list_allows(policies, "runtimes", (runtime_id, kind))
    assert evaluate(snap, request).allowed is expected


# -- limits ------------------------------------------------------------------------------------

limit_values = st.integers(0, 20) | st.floats(0, 20, allow_nan=False)


@st.composite
def limit_policies(draw: st.DrawFn) -> Policy:
    chosen = draw(st.lists(st.sampled_from(limit_rules.FIELDS), min_size=1, max_size=4,
                           unique=True))  # fmt: skip
    return policy(draw(scopes), "limits", {name: draw(limit_values) for name in chosen})


@settings(max_examples=300, deadline=None)
@given(policies=st.lists(limit_policies(), max_size=6))
def test_per_session_limits_are_the_minimum_over_the_subjects_scopes(policies) -> None:
    snap = compile_snapshot(1, policies, [], [])
    got = per_session_limits(snap, DecisionRequest(Act.MESSAGE_SEND, SUBJECT))
    mine = [p for p in policies if scope_of(p) in MINE]
    for name in limit_rules.FIELDS:
        values = [p.body[name] for p in mine if name in p.body]
        if name in limit_rules.SCOPED or not values:
            assert got.get(name) is None
            assert name not in got.sources
        else:
            assert got.get(name) == min(values)
            source = got.sources[name]
            assert source.values[name] == min(values)
            assert source.scope in MINE


@settings(max_examples=300, deadline=None)
@given(
    policies=st.lists(limit_policies(), max_size=6),
    turns=st.integers(0, 25),
    cost=st.integers(0, 25_000_000),
    open_counts=st.fixed_dictionaries({s: st.integers(0, 25) for s in MINE + OTHERS}),
    running=st.fixed_dictionaries({s: st.integers(0, 25) for s in MINE + OTHERS}),
    act=st.sampled_from([Act.SESSION_CREATE, Act.MESSAGE_SEND, Act.TOOL_USE]),
)
def test_limit_checks_match_an_oracle(policies, turns, cost, open_counts, running, act) -> None:
    counters = Counters(session_turns=turns, session_cost_micros=cost,
                        open_sessions=open_counts, running_turns=running)  # fmt: skip
    decision = evaluate(
        compile_snapshot(1, policies, [], []), DecisionRequest(act, SUBJECT, counters=counters)
    )
    mine = [p for p in policies if scope_of(p) in MINE]

    def over(name: str, used: float | Fraction, per_scope: dict[str, int] | None = None) -> bool:
        caps = [(scope_of(p), p.body[name]) for p in mine if name in p.body]
        if per_scope is not None:  # scoped: each policy counts its own scope
            return any(per_scope[s] >= cap for s, cap in caps)
        return bool(caps) and used >= min(cap for _, cap in caps)

    expected_deny = (
        (act is Act.SESSION_CREATE and over("max_open_sessions", 0, open_counts))
        or (act in (Act.SESSION_CREATE, Act.MESSAGE_SEND)
            and over("max_running_turns", 0, running))
        or (act is Act.MESSAGE_SEND and over("max_turns_per_session", turns))
        # dollars compared exactly: the cap in micro-dollars is round(usd * 1e6)
        or (act is Act.MESSAGE_SEND and any("max_session_cost_usd" in p.body for p in mine)
            and cost >= round(min(p.body["max_session_cost_usd"] for p in mine
                                  if "max_session_cost_usd" in p.body) * 1_000_000))
    )  # fmt: skip
    assert (decision.outcome is Outcome.DENY) is expected_deny
    assert decision.code == ("limit_exceeded" if expected_deny else "allowed")
    if expected_deny:
        assert decision.scope in MINE


# -- cost math ---------------------------------------------------------------------------------

micros_per_mtok = st.integers(0, 200_000_000)
prices = st.builds(ModelPrice, st.just("m"), micros_per_mtok, micros_per_mtok,
                   st.none() | micros_per_mtok, st.none() | micros_per_mtok)  # fmt: skip
tokens = st.integers(0, 5_000_000)


def exact_cost(price: ModelPrice, inp: int, out: int, read: int = 0, write: int = 0) -> Fraction:
    read_price = price.input_micros if price.cache_read_micros is None else price.cache_read_micros
    write_price = (
        price.input_micros if price.cache_write_micros is None else price.cache_write_micros
    )
    usd_micros = (
        Fraction(inp * price.input_micros, 10**6)
        + Fraction(out * price.output_micros, 10**6)
        + Fraction(read * read_price, 10**6)
        + Fraction(write * write_price, 10**6)
    )
    return usd_micros


@settings(max_examples=500, deadline=None)
@given(price=prices, counts=st.tuples(tokens, tokens, tokens, tokens),
       more=st.tuples(tokens, tokens, tokens, tokens))  # fmt: skip
def test_cost_rounds_up_and_is_monotone(price: ModelPrice, counts, more) -> None:
    inp, out, read, write = counts
    cost = cost_micros(price, inp, out, cache_read_tokens=read, cache_write_tokens=write)
    exact = exact_cost(price, inp, out, read, write)
    assert isinstance(cost, int)
    assert exact <= cost < exact + 1  # never below the real cost, at most one micro above
    bigger = [a + b for a, b in zip(counts, more, strict=True)]
    more_cost = cost_micros(price, bigger[0], bigger[1], cache_read_tokens=bigger[2],
                            cache_write_tokens=bigger[3])  # fmt: skip
    assert more_cost >= cost


@settings(max_examples=500, deadline=None)
@given(price=prices, prompt=tokens, max_out=tokens, data=st.data())
def test_worst_case_covers_every_call_within_max_tokens(price, prompt, max_out, data) -> None:
    worst = worst_case_micros(price, prompt, max_out)
    assert worst >= exact_cost(price, prompt, max_out)
    out = data.draw(st.integers(0, max_out))
    assert worst >= cost_micros(price, prompt, out)
    # cached reads (priced at most as input) only make the prompt cheaper
    cheap_reads = price.cache_read_micros is None or price.cache_read_micros <= price.input_micros
    if cheap_reads:
        cached = data.draw(st.integers(0, prompt))
        assert worst >= cost_micros(price, prompt - cached, out, cache_read_tokens=cached)


# -- the budget ledger against a real SQLite file ----------------------------------------------

WINDOW = datetime(1970, 1, 1, tzinfo=UTC)
ACCOUNTS = ("budget:a", "budget:b", "rate:c")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run on a private loop: never touches the loop pytest-asyncio keeps for async tests."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each example (migrating each time would be slow)."""
    path = tmp_path_factory.mktemp("ledger") / "template.db"

    async def make() -> None:
        db = Database(f"sqlite:///{path}")
        await migrate.upgrade(db)
        await db.dispose()

    run(make())
    return path


@st.composite
def ledger_ops(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    ops: list[tuple[Any, ...]] = []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["reserve", "reserve", "settle", "release"]))
        if kind == "reserve":
            chosen = draw(st.lists(st.integers(0, 2), min_size=1, max_size=3, unique=True))
            parts = [(i, draw(st.integers(0, 1_200)), draw(st.booleans())) for i in chosen]
            ops.append(("reserve", parts))
        else:
            ops.append((kind, draw(st.integers(0, 50)), draw(st.floats(0, 1))))
    return ops


@dataclass
class Model:
    """What a budget should look like: limit, what was spent, what live reservations hold."""

    limit: int
    spent: int = 0
    outstanding: int = 0


@dataclass
class Live:
    reservation: Reservation
    parts: list[tuple[int, int, bool]] = field(default_factory=list)


async def _windows(db: Database) -> dict[str, tuple[int, int]]:
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(ledger_windows))).all()
    return {r.account: (int(r.spent), int(r.reserved)) for r in rows}


async def _holds(db: Database) -> dict[str, int]:
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(ledger_holds))).all()
    sums: dict[str, int] = {}
    for r in rows:
        sums[r.account] = sums.get(r.account, 0) + int(r.amount)
    return sums


async def _check(db: Database, models: list[Model]) -> None:
    windows, holds = await _windows(db), await _holds(db)
    for account, model in zip(ACCOUNTS, models, strict=True):
        spent, reserved = windows.get(account, (0, 0))
        assert spent == model.spent, account
        assert spent + reserved <= model.limit, account
        assert reserved >= model.outstanding, account  # live reservations are backed
        assert holds.get(account, 0) == reserved, account  # the holds are the reservations


async def _ledger_run(path: Path, limits: list[int], ops: list[tuple[Any, ...]]) -> None:
    db = Database(f"sqlite:///{path}")
    ledger = BudgetLedger(db, "replica-p")
    models = [Model(limit) for limit in limits]
    live: list[Live] = []
    try:
        for op in ops:
            if op[0] == "reserve":
                parts = op[1]
                room = [models[i].limit - models[i].spent - models[i].outstanding for i in
                        range(3)]  # fmt: skip
                fits = all(amount <= room[i] for i, amount, _ in parts)
                got = await ledger.reserve(
                    [Part(ACCOUNTS[i], WINDOW, limits[i], amount, fixed=fixed)
                     for i, amount, fixed in parts],
                    ttl=600,
                )  # fmt: skip
                if fits:  # exact: nothing is refused while the worst case still fits
                    assert isinstance(got, Reservation)
                    for i, amount, _ in parts:
                        models[i].outstanding += amount
                    live.append(Live(got, parts))
                else:
                    assert isinstance(got, Shortfall)
                    short = ACCOUNTS.index(got.account)
                    assert any(i == short and amount > room[i] for i, amount, _ in parts)
                    assert (got.limit, got.available) == (limits[short], room[short])
            elif live:
                chosen = live.pop(op[1] % len(live))
                for i, amount, _ in chosen.parts:
                    models[i].outstanding -= amount
                if op[0] == "release":
                    ledger.release(chosen.reservation)
                else:
                    variable = [amount for _, amount, fixed in chosen.parts if not fixed]
                    cost = int(op[2] * min(variable, default=0))
                    await ledger.settle(chosen.reservation, cost)
                    for i, amount, fixed in chosen.parts:
                        models[i].spent += amount if fixed else cost
            await _check(db, models)
        await ledger.aclose()
        for model in models:
            model.outstanding = 0
        await _check(db, models)
        assert all(reserved == 0 for _, reserved in (await _windows(db)).values())
        assert await _holds(db) == {}
    finally:
        await db.dispose()


@settings(max_examples=25, deadline=None)
@given(limits=st.lists(st.integers(0, 3_000), min_size=3, max_size=3), ops=ledger_ops())
def test_ledger_never_overspends_and_leaks_nothing(template_db: Path, limits, ops) -> None:
    with tempfile.TemporaryDirectory(dir=template_db.parent) as tmp:
        path = Path(tmp) / f"{uuid.uuid4().hex}.db"
        shutil.copyfile(template_db, path)
        run(_ledger_run(path, limits, ops))
