"""``evaluate()`` over compiled snapshots: table-driven checks of every rule area against the spec.

Deny beats ask beats allow; a narrower scope only refines a wider one; scoped limits count at the
policy's own scope while per-session limits take the tightest value; an unpriced model is refused
to a budgeted principal; a revoked key or paused agent stops everything but answering approvals.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from corral.domain.errors import InvalidRequest
from corral.domain.governance import (
    Act,
    Approver,
    ApproverRule,
    Counters,
    Decision,
    DecisionRequest,
    Outcome,
    Subject,
    ToolUse,
)
from corral.domain.records import Budget, ModelPriceRow, Policy
from corral.governance.decide import evaluate, needs_counts, per_session_limits
from corral.governance.rules.tools import DEFAULT_ASK_TTL, tool_use
from corral.governance.snapshot import Snapshot, compile_policy, compile_snapshot

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SUBJECT = Subject(org_id="o1", team_id="t1", agent_id="a1", user_id="u1", key_id="k1")
_ids = itertools.count(1)


def policy(
    scope: str, kind: str, body: Any, *, id: str | None = None, version: int = 1, enabled=True
) -> Policy:
    scope_kind, scope_id = scope.split(":", 1)
    return Policy(
        id=id or f"pol_{next(_ids)}", org_id="o1", scope_kind=scope_kind, scope_id=scope_id,
        kind=kind, body=body, version=version, enabled=enabled, description=None,
        created_by=None, created_at=T0, updated_at=T0,
    )  # fmt: skip


def budget(scope: str, limit_micros: int = 10_000_000, *, id: str | None = None) -> Budget:
    scope_kind, scope_id = scope.split(":", 1)
    return Budget(
        id=id or f"bud_{next(_ids)}", org_id="o1", scope_kind=scope_kind, scope_id=scope_id,
        limit_micros=limit_micros, period="monthly", timezone="UTC", soft_percent=None,
        version=1, created_by=None, created_at=T0, updated_at=T0,
    )  # fmt: skip


def price_row(org: str, model: str, inp: int = 1_000_000, out: int = 2_000_000) -> ModelPriceRow:
    return ModelPriceRow(org, model, inp, out, None, None, T0)


def snap(
    *policies: Policy,
    budgets: tuple[Budget, ...] = (),
    prices: tuple[ModelPriceRow, ...] = (),
    epoch: int = 1,
    paused: tuple[str, ...] = (),
    revoked: tuple[str, ...] = (),
) -> Snapshot:
    return compile_snapshot(
        epoch, policies, budgets, prices, paused_agents=paused, revoked_keys=revoked
    )


def use(name: str, arguments: Any = None, server: str | None = None) -> DecisionRequest:
    return DecisionRequest(Act.TOOL_USE, SUBJECT, tool=tool_use(name, server, arguments))


def tool(scope: str, effect: str, tools: list[str] | None = None, **extra: Any) -> Policy:
    body: dict[str, Any] = {"effect": effect, **extra}
    if tools is not None:
        body["tools"] = tools
    return policy(scope, "tool", body)


# -- tool names, servers and arguments ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "server", "expected_server"),
    [
        ("mcp__github__create_issue", None, "github"),
        ("mcp__my_server__do_thing", None, "my_server"),
        ("mcp__a__b__c", None, "a"),
        ("mcp____x", None, None),  # a server name never starts with "_"
        ("mcp__github", None, None),  # no tool part
        ("Bash", None, None),
        ("mcp__github__x", "explicit", "explicit"),  # the runtime's server wins
    ],
)
def test_tool_use_reads_the_mcp_server(name: str, server: str | None, expected_server) -> None:
    got = tool_use(name, server, {"k": 1})
    assert got == ToolUse(name, expected_server, {"k": 1})


def test_tool_use_ignores_non_object_arguments() -> None:
    assert tool_use("Bash", None, ["ls"]).arguments == {}
    assert tool_use("Bash", None, "ls").arguments == {}
    assert tool_use("Bash").arguments == {}


@pytest.mark.parametrize(
    ("patterns", "name", "matches"),
    [
        (["Bash"], "Bash", True),
        (["Bash"], "bash", False),  # case-sensitive
        (["Bash"], "BashOutput", False),  # whole name, not a prefix
        (["Bash"], "MyBash", False),
        (["Ba?h"], "Bash", True),
        (["Ba?h"], "Bah", False),
        (["Ba*"], "Ba", True),
        (["*Output"], "BashOutput", True),
        (["mcp__*"], "mcp__github__create_issue", True),
        (["mcp__github__*"], "mcp__gitlab__create_issue", False),
        (["Read", "Write"], "Write", True),
        (["Read", "Write"], "Edit", False),
        (["a.b"], "axb", False),  # regex characters are literal
        (["a+"], "aa", False),
        (["a+"], "a+", True),
        (["[ab]"], "a", False),
        (["[ab]"], "[ab]", True),
    ],
)
def test_tool_name_globs(patterns: list[str], name: str, matches: bool) -> None:
    decision = evaluate(snap(tool("org:o1", "deny", patterns)), use(name))
    assert decision.outcome is (Outcome.DENY if matches else Outcome.ALLOW)
    assert decision.code == ("tool_denied" if matches else "allowed")


@pytest.mark.parametrize(
    ("servers", "name", "server", "matches"),
    [
        (["github"], "mcp__github__create_issue", None, True),
        (["github"], "mcp__gitlab__create_issue", None, False),
        (["git*"], "mcp__gitlab__create_issue", None, True),
        (["github"], "github", None, False),  # a plain tool named like the server has no server
        (["github"], "create_issue", "github", True),  # the runtime named the server
        (["github"], "mcp__github__x", "other", False),
    ],
)
def test_tool_rules_by_server(servers, name: str, server: str | None, matches: bool) -> None:
    s = snap(policy("org:o1", "tool", {"effect": "deny", "servers": servers}))
    assert evaluate(s, use(name, server=server)).outcome is (
        Outcome.DENY if matches else Outcome.ALLOW
    )


def test_names_and_servers_must_both_match() -> None:
    s = snap(
        policy("org:o1", "tool", {"effect": "deny", "tools": ["*delete*"], "servers": ["github"]})
    )
    assert evaluate(s, use("mcp__github__delete_repo")).outcome is Outcome.DENY
    assert evaluate(s, use("mcp__github__create_issue")).outcome is Outcome.ALLOW
    assert evaluate(s, use("mcp__gitlab__delete_repo")).outcome is Outcome.ALLOW


@pytest.mark.parametrize(
    ("tests", "arguments", "matches"),
    [
        # prefix: on the text, leading blanks ignored
        ({"command": {"prefix": "rm "}}, {"command": "rm -rf /"}, True),
        ({"command": {"prefix": "rm "}}, {"command": "   rm -rf /"}, True),
        ({"command": {"prefix": "rm "}}, {"command": "echo rm -rf"}, False),
        ({"command": {"prefix": "rm "}}, {"command": "rmdir x"}, False),
        ({"command": {"prefix": "rm "}}, {}, False),  # absent argument: rule does not match
        # list values are joined by spaces
        ({"command": {"prefix": "rm -rf"}}, {"command": ["rm", "-rf", "/"]}, True),
        ({"command": {"glob": "git push *"}}, {"command": ["git", "push", "origin"]}, True),
        ({"command": {"glob": "git push *"}}, {"command": ["git", "pull", "origin"]}, False),
        # glob: whole text; a bare string is a glob
        ({"command": "git *"}, {"command": "git status"}, True),
        ({"command": "git *"}, {"command": "sudo git status"}, False),
        ({"count": {"glob": "1?"}}, {"count": 12}, True),  # non-text values as text
        ({"count": {"glob": "1?"}}, {"count": 123}, False),
        # equals: the JSON value itself
        ({"force": {"equals": True}}, {"force": True}, True),
        ({"force": {"equals": True}}, {"force": "true"}, False),
        ({"n": {"equals": 1}}, {"n": "1"}, False),
        ({"mode": {"equals": "w"}}, {"mode": "w"}, True),
        ({"paths": {"equals": ["a", "b"]}}, {"paths": ["a", "b"]}, True),
        ({"paths": {"equals": ["a", "b"]}}, {"paths": ["b", "a"]}, False),
        # regex: full match
        ({"path": {"regex": r"/etc/.*"}}, {"path": "/etc/passwd"}, True),
        ({"path": {"regex": r"/etc/.*"}}, {"path": "/home/etc/passwd"}, False),
        ({"path": {"regex": r"/etc"}}, {"path": "/etc/passwd"}, False),
        ({"url": {"regex": r"https://(?!internal\.).*"}}, {"url": "https://internal.x"}, False),
        ({"url": {"regex": r"https://(?!internal\.).*"}}, {"url": "https://example.com"}, True),
        # nested paths
        ({"opts.mode": {"equals": "w"}}, {"opts": {"mode": "w"}}, True),
        ({"opts.mode": {"equals": "w"}}, {"opts": {"mode": "r"}}, False),
        ({"opts.mode": {"equals": "w"}}, {"opts": "w"}, False),
        ({"opts.mode": {"equals": "w"}}, {"opts.mode": "w"}, False),
        ({"a.b.c": {"prefix": "x"}}, {"a": {"b": {"c": "xyz"}}}, True),
        ({"a.b.c": {"prefix": "x"}}, {"a": {"b": {"d": "xyz"}}}, False),
        # every test must pass
        (
            {"command": {"prefix": "git"}, "force": {"equals": True}},
            {"command": "git push", "force": True},
            True,
        ),
        (
            {"command": {"prefix": "git"}, "force": {"equals": True}},
            {"command": "git push", "force": False},
            False,
        ),
    ],
)
def test_argument_tests(tests: dict[str, Any], arguments: dict[str, Any], matches: bool) -> None:
    s = snap(tool("org:o1", "deny", ["Bash"], arguments=tests))
    decision = evaluate(s, use("Bash", arguments))
    assert decision.outcome is (Outcome.DENY if matches else Outcome.ALLOW)
    # the arguments never make a rule match another tool
    assert evaluate(s, use("Read", arguments)).code == "allowed"


# -- precedence --------------------------------------------------------------------------------


@dataclass
class Case:
    rules: list[tuple[str, str]]  # (scope, effect), all on tool "Bash"
    outcome: Outcome
    code: str
    winner: int | None  # index into rules of the deciding rule
    tool_name: str = "Bash"
    extra: dict[str, Any] = field(default_factory=dict)


PRECEDENCE = {
    "org allow, agent deny": Case([("org:o1", "allow"), ("agent:a1", "deny")], Outcome.DENY,
                                  "tool_denied", 1),
    "org deny, agent allow": Case([("org:o1", "deny"), ("agent:a1", "allow")], Outcome.DENY,
                                  "tool_denied", 0),
    "org deny, key allow": Case([("org:o1", "deny"), ("key:k1", "allow")], Outcome.DENY,
                                "tool_denied", 0),
    "team ask, key allow": Case([("team:t1", "ask"), ("key:k1", "allow")], Outcome.ASK,
                                "approval_required", 0),
    "org allow, agent ask": Case([("org:o1", "allow"), ("agent:a1", "ask")], Outcome.ASK,
                                 "approval_required", 1),
    "agent ask, team deny": Case([("agent:a1", "ask"), ("team:t1", "deny")], Outcome.DENY,
                                 "tool_denied", 1),
    "ask, allow, deny": Case([("key:k1", "ask"), ("org:o1", "allow"), ("team:t1", "deny")],
                             Outcome.DENY, "tool_denied", 2),
    "allow only": Case([("team:t1", "allow")], Outcome.ALLOW, "tool_allowed", 0),
    "no rule": Case([], Outcome.ALLOW, "allowed", None),
    "rules for other tools": Case([("org:o1", "deny")], Outcome.ALLOW, "allowed", None,
                                  tool_name="Read"),
    "other agent's deny": Case([("agent:a2", "deny"), ("agent:a1", "allow")], Outcome.ALLOW,
                               "tool_allowed", 1),
    "other team's deny": Case([("team:t2", "deny")], Outcome.ALLOW, "allowed", None),
    "other key's ask": Case([("key:k2", "ask")], Outcome.ALLOW, "allowed", None),
    "user scope deny": Case([("user:u1", "deny")], Outcome.DENY, "tool_denied", 0),
}  # fmt: skip


@pytest.mark.parametrize("case", PRECEDENCE.values(), ids=PRECEDENCE.keys())
def test_precedence_across_scopes(case: Case) -> None:
    policies = [
        policy(scope, "tool", {"effect": effect, "tools": ["Bash"]}, id=f"p{i}", version=i + 3)
        for i, (scope, effect) in enumerate(case.rules)
    ]
    for ordered in (policies, policies[::-1]):
        decision = evaluate(snap(*ordered, epoch=9), use(case.tool_name))
        assert (decision.outcome, decision.code) == (case.outcome, case.code)
        assert decision.epoch == 9
        if case.winner is None:
            assert decision.policy is None and decision.scope is None
        else:
            assert decision.policy_id == f"p{case.winner}"
            assert decision.policy_version == case.winner + 3
            assert decision.scope == case.rules[case.winner][0]


def test_disabled_policies_do_not_count() -> None:
    s = snap(policy("org:o1", "tool", {"effect": "deny", "tools": ["Bash"]}, enabled=False))
    assert evaluate(s, use("Bash")).code == "allowed"
    assert s.policy_count == 0


def test_ask_carries_approvers_and_ttl() -> None:
    named = tool("team:t1", "ask", ["Bash"], approvers={"roles": ["admin"], "users": ["u9"]},
                 ask_ttl_seconds=60)  # fmt: skip
    decision = evaluate(snap(named), use("Bash"))
    assert decision.outcome is Outcome.ASK
    assert decision.approvers == ApproverRule(("admin",), ("u9",))
    assert decision.ask_ttl_seconds == 60
    default = evaluate(snap(tool("team:t1", "ask", ["Bash"])), use("Bash"))
    assert default.approvers == ApproverRule()
    assert default.ask_ttl_seconds == DEFAULT_ASK_TTL == 900


@pytest.mark.parametrize("act", [Act.SESSION_CREATE, Act.MESSAGE_SEND, Act.MODEL_CALL])
def test_tool_rules_only_judge_tool_use(act: Act) -> None:
    s = snap(tool("org:o1", "deny", ["*"]))
    assert evaluate(s, DecisionRequest(act, SUBJECT, model="gpt-4o")).code == "allowed"
    assert evaluate(s, DecisionRequest(Act.TOOL_USE, SUBJECT)).code == "allowed"  # no tool named


def test_decision_names_policy_version_scope_and_epoch() -> None:
    s = snap(
        policy("agent:a1", "tool", {"effect": "deny", "tools": ["Bash"]}, id="pol_x", version=7),
        epoch=42,
    )
    decision = evaluate(s, use("Bash"))
    assert decision == Decision(
        Outcome.DENY, "tool_denied", decision.reason, decision.policy, "agent:a1", 42
    )
    assert (decision.policy_id, decision.policy_version) == ("pol_x", 7)
    assert "Bash" in decision.reason
    assert evaluate(s, use("Read")).epoch == 42  # allows carry the epoch too


# -- model and runtime lists -------------------------------------------------------------------


def models(scope: str, patterns: list[str], effect: str | None = None) -> Policy:
    body: dict[str, Any] = {"models": patterns}
    if effect is not None:
        body["effect"] = effect
    return policy(scope, "model", body)


def runtimes(scope: str, patterns: list[str], effect: str | None = None) -> Policy:
    body: dict[str, Any] = {"runtimes": patterns}
    if effect is not None:
        body["effect"] = effect
    return policy(scope, "runtime", body)


MODEL_CASES = {
    "org allowlist, in": ([models("org:o1", ["claude-*"])], "claude-sonnet-4-5", None),
    "org allowlist, out": ([models("org:o1", ["claude-*"])], "gpt-4o",
                           ("model_not_allowed", "org:o1")),
    "explicit allow effect": ([models("org:o1", ["gpt-4o"], "allow")], "gpt-4o", None),
    "agent narrows org, in": ([models("org:o1", ["claude-*", "gpt-*"]),
                               models("agent:a1", ["gpt-4o*"])], "gpt-4o-mini", None),
    "agent narrows org, out": ([models("org:o1", ["claude-*", "gpt-*"]),
                                models("agent:a1", ["gpt-4o*"])], "claude-opus-4",
                               ("model_not_allowed", "agent:a1")),
    "agent cannot widen org": ([models("org:o1", ["claude-*"]), models("agent:a1", ["gpt-*"])],
                               "gpt-4o", ("model_not_allowed", "org:o1")),
    "disjoint lists allow nothing": ([models("org:o1", ["claude-*"]),
                                      models("agent:a1", ["gpt-*"])], "claude-opus-4",
                                     ("model_not_allowed", "agent:a1")),
    "two allow rules at one scope": ([models("team:t1", ["a"]), models("team:t1", ["b"])], "b",
                                     None),
    "key deny under org allow-all": ([models("org:o1", ["*"]), models("key:k1", ["gpt-4o"],
                                      "deny")], "gpt-4o", ("model_denied", "key:k1")),
    "deny does not allowlist": ([models("org:o1", ["gpt-4o"], "deny")], "o3", None),
    "org deny beats agent allow": ([models("org:o1", ["gpt-*"], "deny"),
                                    models("agent:a1", ["gpt-4o"])], "gpt-4o",
                                   ("model_denied", "org:o1")),
    "other team's allowlist": ([models("team:t2", ["claude-*"])], "gpt-4o", None),
    "globs are whole-name": ([models("org:o1", ["gpt-4o"])], "gpt-4o-mini",
                             ("model_not_allowed", "org:o1")),
}  # fmt: skip


@pytest.mark.parametrize(("policies", "model", "denied"), MODEL_CASES.values(),
                         ids=MODEL_CASES.keys())  # fmt: skip
@pytest.mark.parametrize("act", [Act.SESSION_CREATE, Act.MESSAGE_SEND, Act.MODEL_CALL])
def test_model_lists(policies: list[Policy], model: str, denied, act: Act) -> None:
    decision = evaluate(snap(*policies), DecisionRequest(act, SUBJECT, model=model))
    if denied is None:
        assert decision.outcome is Outcome.ALLOW and decision.code == "allowed"
    else:
        assert decision.outcome is Outcome.DENY
        assert (decision.code, decision.scope) == denied


def test_model_lists_do_not_judge_tool_use_or_absent_models() -> None:
    s = snap(models("org:o1", ["claude-*"]))
    assert evaluate(s, DecisionRequest(Act.TOOL_USE, SUBJECT, model="gpt-4o")).allowed
    assert evaluate(s, DecisionRequest(Act.SESSION_CREATE, SUBJECT)).allowed


RUNTIME_CASES = {
    "by id, in": ([runtimes("org:o1", ["rt_1"])], "rt_1", "opencode", None),
    "by id, out": ([runtimes("org:o1", ["rt_1"])], "rt_2", "opencode",
                   ("runtime_not_allowed", "org:o1")),
    "by kind": ([runtimes("org:o1", ["opencode"])], "rt_2", "opencode", None),
    "by kind glob": ([runtimes("team:t1", ["open*"])], "rt_9", "opencode", None),
    "deny by kind": ([runtimes("agent:a1", ["claude*"], "deny")], "rt_3", "claude_code",
                     ("runtime_denied", "agent:a1")),
    "deny by id": ([runtimes("org:o1", ["rt_3"], "deny")], "rt_3", "opencode",
                   ("runtime_denied", "org:o1")),
    "kind narrows id": ([runtimes("org:o1", ["rt_*"]), runtimes("agent:a1", ["opencode"])],
                        "rt_1", "claude_code", ("runtime_not_allowed", "agent:a1")),
    "no kind given": ([runtimes("org:o1", ["opencode"])], "rt_1", None,
                      ("runtime_not_allowed", "org:o1")),
}  # fmt: skip


@pytest.mark.parametrize(("policies", "runtime_id", "kind", "denied"), RUNTIME_CASES.values(),
                         ids=RUNTIME_CASES.keys())  # fmt: skip
@pytest.mark.parametrize("act", [Act.SESSION_CREATE, Act.MESSAGE_SEND])
def test_runtime_lists(policies, runtime_id: str, kind: str | None, denied, act: Act) -> None:
    request = DecisionRequest(act, SUBJECT, runtime_id=runtime_id, runtime_kind=kind)
    decision = evaluate(snap(*policies), request)
    if denied is None:
        assert decision.allowed and decision.code == "allowed"
    else:
        assert decision.outcome is Outcome.DENY
        assert (decision.code, decision.scope) == denied


def test_runtime_lists_only_judge_starting_a_turn() -> None:
    s = snap(runtimes("org:o1", ["rt_1"]))
    for act in (Act.MODEL_CALL, Act.TOOL_USE):
        request = DecisionRequest(act, SUBJECT, runtime_id="rt_2", runtime_kind="x",
                                  tool=tool_use("Bash"))  # fmt: skip
        assert evaluate(s, request).allowed


def test_runtime_is_checked_before_model_before_limits_before_tools() -> None:
    s = snap(
        runtimes("org:o1", ["rt_1"]),
        models("org:o1", ["claude-*"]),
        policy("org:o1", "limits", {"max_running_turns": 0}),
    )
    request = DecisionRequest(Act.MESSAGE_SEND, SUBJECT, runtime_id="rt_2", model="gpt-4o")
    assert evaluate(s, request).code == "runtime_not_allowed"
    request = DecisionRequest(Act.MESSAGE_SEND, SUBJECT, runtime_id="rt_1", model="gpt-4o")
    assert evaluate(s, request).code == "model_not_allowed"
    request = DecisionRequest(Act.MESSAGE_SEND, SUBJECT, runtime_id="rt_1", model="claude-x")
    assert evaluate(s, request).code == "limit_exceeded"
    s = snap(policy("org:o1", "limits", {"max_running_turns": 0}), tool("org:o1", "allow", ["*"]))
    assert evaluate(s, use("Bash")).code == "tool_allowed"  # running turns don't gate tools


# -- limits ------------------------------------------------------------------------------------


def limits(scope: str, **values: float) -> Policy:
    return policy(scope, "limits", values)


LIMIT_CASES = {
    "open sessions at the cap": (
        [limits("team:t1", max_open_sessions=2)], Act.SESSION_CREATE,
        Counters(open_sessions={"team:t1": 2}), "team:t1"),
    "open sessions below the cap": (
        [limits("team:t1", max_open_sessions=2)], Act.SESSION_CREATE,
        Counters(open_sessions={"team:t1": 1}), None),
    "open sessions count at the policy's scope": (
        [limits("org:o1", max_open_sessions=10)], Act.SESSION_CREATE,
        Counters(open_sessions={"team:t1": 50, "agent:a1": 50}), None),
    "open sessions do not gate messages": (
        [limits("agent:a1", max_open_sessions=1)], Act.MESSAGE_SEND,
        Counters(open_sessions={"agent:a1": 5}), None),
    "the tighter scope stops it": (
        [limits("org:o1", max_open_sessions=100), limits("agent:a1", max_open_sessions=3)],
        Act.SESSION_CREATE, Counters(open_sessions={"org:o1": 4, "agent:a1": 3}), "agent:a1"),
    "the wider scope stops it": (
        [limits("org:o1", max_open_sessions=4), limits("agent:a1", max_open_sessions=3)],
        Act.SESSION_CREATE, Counters(open_sessions={"org:o1": 4, "agent:a1": 1}), "org:o1"),
    "zero open sessions allowed": (
        [limits("key:k1", max_open_sessions=0)], Act.SESSION_CREATE, Counters(), "key:k1"),
    "running turns gate new sessions": (
        [limits("agent:a1", max_running_turns=1)], Act.SESSION_CREATE,
        Counters(running_turns={"agent:a1": 1}), "agent:a1"),
    "running turns gate messages": (
        [limits("agent:a1", max_running_turns=1)], Act.MESSAGE_SEND,
        Counters(running_turns={"agent:a1": 1}), "agent:a1"),
    "running turns below the cap": (
        [limits("agent:a1", max_running_turns=2)], Act.MESSAGE_SEND,
        Counters(running_turns={"agent:a1": 1}), None),
    "running turns do not gate model calls": (
        [limits("agent:a1", max_running_turns=1)], Act.MODEL_CALL,
        Counters(running_turns={"agent:a1": 3}), None),
    "other scope's counters don't count": (
        [limits("team:t1", max_running_turns=1)], Act.MESSAGE_SEND,
        Counters(running_turns={"team:t2": 9}), None),
    "turns per session, tightest (agent)": (
        [limits("org:o1", max_turns_per_session=10), limits("agent:a1", max_turns_per_session=3)],
        Act.MESSAGE_SEND, Counters(session_turns=3), "agent:a1"),
    "turns per session, tightest (org)": (
        [limits("org:o1", max_turns_per_session=2), limits("agent:a1", max_turns_per_session=5)],
        Act.MESSAGE_SEND, Counters(session_turns=2), "org:o1"),
    "turns per session, room left": (
        [limits("org:o1", max_turns_per_session=10), limits("agent:a1", max_turns_per_session=3)],
        Act.MESSAGE_SEND, Counters(session_turns=2), None),
    "turns per session don't gate creating": (
        [limits("org:o1", max_turns_per_session=1)], Act.SESSION_CREATE,
        Counters(session_turns=5), None),
    "session cost at the cap": (
        [limits("team:t1", max_session_cost_usd=1.5)], Act.MESSAGE_SEND,
        Counters(session_cost_micros=1_500_000), "team:t1"),
    "session cost just under": (
        [limits("team:t1", max_session_cost_usd=1.5)], Act.MESSAGE_SEND,
        Counters(session_cost_micros=1_499_999), None),
    "session cost, tightest wins": (
        [limits("org:o1", max_session_cost_usd=0.5), limits("key:k1", max_session_cost_usd=2)],
        Act.MESSAGE_SEND, Counters(session_cost_micros=600_000), "org:o1"),
    "other team's per-session limit": (
        [limits("team:t2", max_turns_per_session=1)], Act.MESSAGE_SEND,
        Counters(session_turns=9), None),
}  # fmt: skip


@pytest.mark.parametrize(("policies", "act", "counters", "denied_at"), LIMIT_CASES.values(),
                         ids=LIMIT_CASES.keys())  # fmt: skip
def test_limits(policies: list[Policy], act: Act, counters: Counters, denied_at) -> None:
    request = DecisionRequest(act, SUBJECT, counters=counters, model="gpt-4o")
    decision = evaluate(snap(*policies, epoch=5), request)
    if denied_at is None:
        assert decision.allowed, decision
    else:
        assert (decision.outcome, decision.code, decision.scope) == (
            Outcome.DENY, "limit_exceeded", denied_at,
        )  # fmt: skip
        deciding = next(p for p in policies if f"{p.scope_kind}:{p.scope_id}" == denied_at)
        assert (decision.policy_id, decision.policy_version) == (deciding.id, deciding.version)
        assert decision.epoch == 5


def test_per_session_limits_take_the_minimum_and_name_its_source() -> None:
    org = limits("org:o1", max_turns_per_session=10, max_turn_seconds=60, max_open_sessions=5)
    agent = limits("agent:a1", max_turns_per_session=3, max_turn_seconds=600)
    key = limits("key:k1", loop_guard_repeats=4)
    other = limits("agent:a2", max_turns_per_session=1)
    s = snap(org, agent, key, other)
    got = per_session_limits(s, DecisionRequest(Act.MESSAGE_SEND, SUBJECT))
    assert got.values == {"max_turns_per_session": 3, "max_turn_seconds": 60,
                          "loop_guard_repeats": 4}  # fmt: skip
    assert got.sources["max_turns_per_session"].ref.id == agent.id
    assert got.sources["max_turn_seconds"].ref.id == org.id
    assert got.sources["loop_guard_repeats"].ref.id == key.id
    assert got.micros("max_session_cost_usd") is None


def test_needs_counts_lists_scoped_limits_of_the_subject() -> None:
    s = snap(
        limits("org:o1", max_open_sessions=5, max_turns_per_session=3),
        limits("agent:a1", max_running_turns=1),
        limits("team:t1", max_open_sessions=2, max_running_turns=2),
        limits("team:t2", max_open_sessions=1),
    )
    wanted = needs_counts(s, DecisionRequest(Act.SESSION_CREATE, SUBJECT))
    assert sorted(wanted) == sorted([
        ("org:o1", "max_open_sessions"),
        ("team:t1", "max_open_sessions"),
        ("team:t1", "max_running_turns"),
        ("agent:a1", "max_running_turns"),
    ])  # fmt: skip


# -- revoked keys, paused agents, approvers ----------------------------------------------------

NON_APPROVAL_ACTS = [Act.SESSION_CREATE, Act.MESSAGE_SEND, Act.TOOL_USE, Act.MODEL_CALL]


@pytest.mark.parametrize("act", NON_APPROVAL_ACTS)
def test_revoked_key_denies_every_act(act: Act) -> None:
    s = snap(tool("org:o1", "allow", ["*"]), revoked=("k1",), epoch=3)
    request = DecisionRequest(act, SUBJECT, tool=tool_use("Bash"), model="gpt-4o")
    decision = evaluate(s, request)
    assert (decision.outcome, decision.code, decision.scope, decision.epoch) == (
        Outcome.DENY, "key_revoked", "key:k1", 3,
    )  # fmt: skip
    other = DecisionRequest(act, Subject("o1", "t1", "a1", "u1", "k2"), tool=tool_use("Bash"))
    assert evaluate(s, other).allowed


@pytest.mark.parametrize("act", NON_APPROVAL_ACTS)
def test_paused_agent_denies_every_act(act: Act) -> None:
    s = snap(paused=("a1",))
    decision = evaluate(s, DecisionRequest(act, SUBJECT, tool=tool_use("Read")))
    assert (decision.outcome, decision.code, decision.scope) == (
        Outcome.DENY, "agent_paused", "agent:a1",
    )  # fmt: skip
    other = Subject("o1", "t1", "a2", "u1", "k1")
    assert evaluate(s, DecisionRequest(act, other, tool=tool_use("Read"))).allowed


def test_revocation_comes_before_pause_and_before_rules() -> None:
    s = snap(tool("org:o1", "deny", ["*"]), revoked=("k1",), paused=("a1",))
    assert evaluate(s, use("Bash")).code == "key_revoked"
    s = snap(tool("org:o1", "deny", ["*"]), paused=("a1",))
    assert evaluate(s, use("Bash")).code == "agent_paused"


def resolve(approver: Approver | None, rule: ApproverRule | None) -> DecisionRequest:
    return DecisionRequest(Act.APPROVAL_RESOLVE, SUBJECT, approver=approver, approvers=rule)


NAMED = ApproverRule(roles=("developer",), users=("u2",))
APPROVER_CASES = [
    (None, NAMED, "approver_required"),
    (None, None, "approver_required"),
    (Approver("u2", "viewer"), NAMED, "allowed"),  # named user, whatever the role
    (Approver("u3", "developer"), NAMED, "allowed"),  # named role
    (Approver("u3", "admin"), NAMED, "not_an_approver"),  # a rule naming people excludes others
    (Approver("u3", "team_admin"), ApproverRule(users=("u2",)), "not_an_approver"),
    (Approver("u3", "viewer"), ApproverRule(roles=("admin",)), "not_an_approver"),
    (Approver("u3", "admin"), ApproverRule(roles=("admin",)), "allowed"),
    (Approver("u3", "team_admin"), ApproverRule(), "allowed"),  # nobody named: team_admin+
    (Approver("u3", "admin"), ApproverRule(), "allowed"),
    (Approver("u3", "developer"), ApproverRule(), "not_an_approver"),
    (Approver("u3", "viewer"), ApproverRule(), "not_an_approver"),
    (Approver("u3", "team_admin"), None, "allowed"),
    (Approver("u3", "developer"), None, "not_an_approver"),
]


@pytest.mark.parametrize(("approver", "rule", "code"), APPROVER_CASES)
@pytest.mark.parametrize("blocked", [False, True], ids=["live", "revoked+paused"])
def test_approvers(approver: Approver | None, rule, code: str, blocked: bool) -> None:
    # Answering an approval is judged by the approvers alone, even under a revoked key.
    s = snap(revoked=("k1",) if blocked else (), paused=("a1",) if blocked else ())
    decision = evaluate(s, resolve(approver, rule))
    assert decision.code == code
    assert decision.outcome is (Outcome.ALLOW if code == "allowed" else Outcome.DENY)


# -- pricing of budgeted model calls -----------------------------------------------------------


def call(model: str, subject: Subject = SUBJECT, act: Act = Act.MODEL_CALL) -> DecisionRequest:
    return DecisionRequest(act, subject, model=model)


@pytest.mark.parametrize(
    "budget_scope", ["org:o1", "team:t1", "agent:a1", "user:u1", "key:k1", "session:s1"]
)
def test_unpriced_model_denied_under_any_budget(budget_scope: str) -> None:
    subject = Subject("o1", "t1", "a1", "u1", "k1", "s1")
    s = snap(budgets=(budget(budget_scope),), epoch=4)
    decision = evaluate(s, call("mystery-model-9", subject))
    assert (decision.outcome, decision.code, decision.epoch) == (
        Outcome.DENY, "model_unpriced", 4,
    )  # fmt: skip
    assert "mystery-model-9" in decision.reason


@pytest.mark.parametrize(
    ("budgets", "prices", "model", "code"),
    [
        ((), (), "mystery-model", "allowed"),  # nobody budgeted: nothing to count
        ((budget("team:t2"),), (), "mystery-model", "allowed"),  # another team's budget
        ((budget("team:t1"),), (), "claude-sonnet-4-5", "allowed"),
        ((budget("team:t1"),), (), "anthropic/claude-sonnet-4-5", "allowed"),
        ((budget("team:t1"),), (), "gpt-4o-2024-08-06", "allowed"),
        ((budget("team:t1"),), (price_row("o1", "mystery-model"),), "mystery-model", "allowed"),
        ((budget("team:t1"),), (price_row("o2", "mystery-model"),), "mystery-model",
         "model_unpriced"),  # another org's price
        ((budget("org:o1", 0),), (), "mystery-model", "model_unpriced"),
    ],
)  # fmt: skip
def test_model_pricing_under_budgets(budgets, prices, model: str, code: str) -> None:
    assert evaluate(snap(budgets=budgets, prices=prices), call(model)).code == code


@pytest.mark.parametrize("act", [Act.SESSION_CREATE, Act.MESSAGE_SEND, Act.TOOL_USE])
def test_unpriced_only_matters_for_model_calls(act: Act) -> None:
    s = snap(budgets=(budget("org:o1"),))
    assert evaluate(s, call("mystery-model", act=act)).allowed


# -- compile errors ----------------------------------------------------------------------------

BAD_POLICIES = {
    "body not an object": ("tool", ["Bash"]),
    "tool: bad effect": ("tool", {"effect": "maybe", "tools": ["Bash"]}),
    "tool: no effect": ("tool", {"tools": ["Bash"]}),
    "tool: empty tools": ("tool", {"effect": "deny", "tools": []}),
    "tool: tools not a list": ("tool", {"effect": "deny", "tools": "Bash"}),
    "tool: empty pattern": ("tool", {"effect": "deny", "tools": [""]}),
    "tool: non-text pattern": ("tool", {"effect": "deny", "tools": [3]}),
    "tool: names nothing": ("tool", {"effect": "deny"}),
    "tool: empty servers only": ("tool", {"effect": "deny", "servers": []}),
    "tool: unknown argument test": ("tool", {"effect": "deny", "tools": ["Bash"],
                                             "arguments": {"command": {"contains": "rm"}}}),
    "tool: two argument tests": ("tool", {"effect": "deny", "tools": ["Bash"],
                                          "arguments": {"c": {"prefix": "a", "glob": "b"}}}),
    "tool: bad regex": ("tool", {"effect": "deny", "tools": ["Bash"],
                                 "arguments": {"command": {"regex": "(unclosed"}}}),
    "tool: prefix not text": ("tool", {"effect": "deny", "tools": ["Bash"],
                                       "arguments": {"n": {"prefix": 3}}}),
    "tool: arguments not a map": ("tool", {"effect": "deny", "tools": ["Bash"],
                                           "arguments": ["command"]}),
    "tool: argument test not a map": ("tool", {"effect": "deny", "tools": ["Bash"],
                                               "arguments": {"command": 3}}),
    "tool: bad approvers key": ("tool", {"effect": "ask", "tools": ["Bash"],
                                         "approvers": {"groups": ["x"]}}),
    "tool: approvers not names": ("tool", {"effect": "ask", "tools": ["Bash"],
                                           "approvers": {"users": [1]}}),
    "tool: zero ttl": ("tool", {"effect": "ask", "tools": ["Bash"], "ask_ttl_seconds": 0}),
    "tool: negative ttl": ("tool", {"effect": "ask", "tools": ["Bash"], "ask_ttl_seconds": -5}),
    "tool: text ttl": ("tool", {"effect": "ask", "tools": ["Bash"], "ask_ttl_seconds": "10"}),
    "model: ask effect": ("model", {"effect": "ask", "models": ["gpt-4o"]}),
    "model: empty list": ("model", {"models": []}),
    "model: no list": ("model", {"effect": "deny"}),
    "model: wrong field": ("model", {"runtimes": ["rt_1"]}),
    "runtime: no list": ("runtime", {"models": ["gpt-4o"]}),
    "limits: unknown": ("limits", {"max_bananas": 3}),
    "limits: empty": ("limits", {}),
    "limits: negative": ("limits", {"max_open_sessions": -1}),
    "limits: negative cost": ("limits", {"max_session_cost_usd": -0.01}),
    "limits: text": ("limits", {"max_turns_per_session": "3"}),
    "limits: bool": ("limits", {"max_turns_per_session": True}),
    "limits: null": ("limits", {"max_turns_per_session": None}),
}  # fmt: skip


@pytest.mark.parametrize(("kind", "body"), BAD_POLICIES.values(), ids=BAD_POLICIES.keys())
def test_malformed_policies_are_refused(kind: str, body: Any) -> None:
    bad = policy("team:t1", kind, body)
    with pytest.raises(InvalidRequest) as raised:
        compile_policy(bad)
    assert raised.value.code == "invalid_policy"
    with pytest.raises(InvalidRequest):
        snap(tool("org:o1", "allow", ["*"]), bad)
    # disabled, it is never compiled
    snap(policy("team:t1", kind, body, enabled=False))


GOOD_POLICIES = [
    ("tool", {"effect": "deny", "servers": ["github"]}),
    ("tool", {"effect": "ask", "tools": ["Bash"], "approvers": {"roles": [], "users": ["u1"]},
              "ask_ttl_seconds": 0.5}),
    ("tool", {"effect": "deny", "tools": ["Bash"], "arguments": {"n": {"equals": None}}}),
    ("model", {"models": ["*"]}),
    ("runtime", {"effect": "deny", "runtimes": ["rt_1"]}),
    ("limits", {"max_open_sessions": 0}),
    ("limits", {"max_session_cost_usd": 0.25, "requests_per_minute": 60}),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "body"), GOOD_POLICIES)
def test_well_formed_policies_compile(kind: str, body: Any) -> None:
    s = snap(policy("team:t1", kind, body))
    assert s.policy_count == 1
