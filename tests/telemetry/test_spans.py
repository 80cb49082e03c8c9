"""Events -> spans, without I/O: the pure mapping and the live-turn bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from corral.domain.events import Event
from corral.domain.governance import (
    Act,
    Decision,
    DecisionRequest,
    Outcome,
    PolicyRef,
    Subject,
    ToolUse,
)
from corral.telemetry.invocation import TurnInfo, turn_span
from corral.telemetry.spans import SpanKind, SpanStatus, TurnTrace, tool_span_id, trace_id_of
from corral.telemetry.tracer import TurnTracer
from corral.telemetry.tree import build_tree

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
INFO = TurnInfo("agt_1", "helper", 3, "claude-sonnet", "rt_1", "claude_agents",
                "https://api.anthropic.com/v1", "usr_1")  # fmt: skip


def ev(seq: int, type_: str, data: dict[str, Any] | None = None, turn: str = "turn_1",
       session: str = "ses_1") -> Event:  # fmt: skip
    return Event(
        session, seq, type_, T0 + timedelta(seconds=seq), data or {}, None, None, turn, None
    )


def turn_events(turn: str = "turn_1", stop: str = "end_turn") -> list[Event]:
    call = {"call_id": "c1", "name": "bash", "kind": "builtin", "status": "pending"}
    return [
        ev(1, "turn.started", {"turn_id": turn, "text": "run it"}, turn),
        ev(2, "message.delta", {"text": "ok"}, turn),
        ev(3, "tool.call", call, turn),
        ev(4, "tool.call", {**call, "status": "running", "input": {"command": "ls"}}, turn),
        ev(
            5, "approval.requested", {"approval_id": "apr_1", "call_id": "c1", "name": "bash"}, turn
        ),
        ev(
            6,
            "approval.resolved",
            {"approval_id": "apr_1", "decision": "allow_once", "by": "client"},
            turn,
        ),
        ev(7, "tool.result", {"call_id": "c1", "output": "a b", "is_error": False}, turn),
        ev(
            8,
            "message.completed",
            {"role": "assistant", "content": [{"type": "text", "text": "done"}]},
            turn,
        ),
        ev(9, "turn.completed", {"turn_id": turn, "stop_reason": stop}, turn),
        ev(10, "usage", {"input_tokens": 10, "output_tokens": 4, "cost_micros": 70}, turn),
    ]


def fold(turn: TurnTrace, events: list[Event]) -> list[Any]:
    spans = []
    for e in events:
        spans += turn.apply(e)
    return spans


def test_a_turn_folds_into_tool_and_approval_spans_under_its_invoke_agent_span() -> None:
    turn = TurnTrace("turn_1")
    approval, tool = fold(turn, turn_events())
    root = turn_span(turn, INFO)
    assert {s.trace_id for s in (approval, tool, root)} == {trace_id_of("turn_1")}
    assert root.parent_id is None and tool.parent_id == root.span_id
    assert approval.parent_id == tool.span_id == tool_span_id("turn_1", "c1")
    assert (tool.name, tool.start, tool.end) == ("execute_tool bash", ev(3, "").ts, ev(7, "").ts)
    assert tool.attributes == {
        "gen_ai.conversation.id": "ses_1", "session.id": "ses_1", "corral.turn.id": "turn_1",
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "bash",
        "gen_ai.tool.call.id": "c1", "gen_ai.tool.type": "extension",
    }  # fmt: skip
    assert approval.name == "await_approval bash"
    assert approval.attributes["corral.approval.decision"] == "allow_once"
    assert (root.name, root.kind, root.status) == ("invoke_agent helper", SpanKind.CLIENT,
                                                   SpanStatus.UNSET)  # fmt: skip
    assert (root.start, root.end) == (ev(1, "").ts, ev(9, "").ts)
    a = root.attributes
    assert a["gen_ai.provider.name"] == "anthropic"  # Claude Managed Agents: a well-known value
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (10, 4)
    assert a["corral.cost.micros"] == 70
    assert (a["server.address"], a["server.port"]) == ("api.anthropic.com", 443)
    assert a["gen_ai.agent.version"] == "3" and a["gen_ai.request.model"] == "claude-sonnet"
    assert turn.first_chunk == ev(2, "").ts
    assert not any(k.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.tool.call.a",
                                 "gen_ai.tool.call.r")) for s in (tool, root) for k in s.attributes)  # fmt: skip


def test_contents_only_when_opted_in() -> None:
    turn = TurnTrace("turn_1", content=True)
    _approval, tool = fold(turn, turn_events())
    root = turn_span(turn, INFO)
    assert tool.attributes["gen_ai.tool.call.arguments"] == '{"command": "ls"}'
    assert tool.attributes["gen_ai.tool.call.result"] == "a b"
    assert root.attributes["gen_ai.input.messages"] == (
        '[{"role": "user", "parts": [{"type": "text", "content": "run it"}]}]'
    )
    assert '"content": "done"' in root.attributes["gen_ai.output.messages"]


def test_a_failed_turn_is_an_error_with_its_type_and_closes_what_is_open() -> None:
    turn = TurnTrace("turn_1")
    events = [
        ev(1, "turn.started"),
        ev(2, "tool.call", {"call_id": "c9", "name": "web"}),
        ev(3, "approval.requested", {"approval_id": "apr_9", "name": "web"}),
        ev(4, "error", {"code": "runtime_unavailable", "message": "upstream said no"}),
        ev(5, "turn.completed", {"stop_reason": "error"}),
    ]
    approval, tool = fold(turn, events)
    assert approval.attributes["error.type"] == "unanswered" and approval.parent_id == turn.span_id
    assert tool.attributes["error.type"] == "unfinished" and tool.status is SpanStatus.ERROR
    assert tool.end == ev(5, "").ts
    root = turn_span(turn, None)
    assert root.status is SpanStatus.ERROR
    assert root.attributes["error.type"] == "runtime_unavailable"
    assert "upstream said no" not in str(root.attributes)
    assert root.name == "invoke_agent"  # who ran it is unknown (the session is gone)


def test_a_rebuilt_turn_has_the_same_ids() -> None:
    live, rebuilt = TurnTrace("turn_1"), TurnTrace("turn_1")
    a = [*fold(live, turn_events()), turn_span(live, INFO)]
    b = [*fold(rebuilt, turn_events()), turn_span(rebuilt, INFO)]
    assert [(s.trace_id, s.span_id, s.parent_id) for s in a] == [
        (s.trace_id, s.span_id, s.parent_id) for s in b
    ]
    assert trace_id_of("turn_1") != trace_id_of("turn_2")


# -- the live turns of a process ---------------------------------------------------------------


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def tracer(pumps: set[str], clock: Clock, **kwargs: Any) -> tuple[TurnTracer, list[Any]]:
    out: list[Any] = []
    traced = TurnTracer(emit=out.extend, has_pump=lambda s: s in pumps, grace=2.0, clock=clock,
                        **kwargs)  # fmt: skip
    return traced, out


def decision(outcome: Outcome, code: str, policy: PolicyRef | None = None) -> Decision:
    return Decision(outcome, code, f"{code} reason", policy=policy, epoch=7)


def test_decisions_join_the_turn_and_the_tool_they_are_about() -> None:
    clock = Clock()
    traced, out = tracer({"ses_1"}, clock)
    admit = DecisionRequest(Act.MESSAGE_SEND, Subject("org_1"), hold_as="turn:turn_1")
    traced.on_decision(admit, decision(Outcome.ALLOW, "allowed"), 0.002)
    assert out == []  # a first turn's session does not exist yet: held until the turn starts
    events = turn_events()
    traced.observe("ses_1", events[:3])
    (admission,) = out
    assert admission.parent_id is not None and admission.trace_id == trace_id_of("turn_1")
    assert admission.session_id == "ses_1"
    assert admission.attributes["gen_ai.conversation.id"] == "ses_1"
    use = DecisionRequest(Act.TOOL_USE, Subject("org_1", session_id="ses_1"), tool=ToolUse("bash"))
    traced.on_decision(use, decision(Outcome.DENY, "tool_denied", PolicyRef("pol_1", 2)), 0.0001)
    denied = out[-1]
    assert denied.name == "decide tool.use" and denied.parent_id == tool_span_id("turn_1", "c1")
    assert denied.attributes["corral.policy.id"] == "pol_1"
    assert denied.attributes["corral.policy.version"] == 2
    assert denied.attributes["corral.epoch"] == 7
    traced.observe("ses_1", events[3:])
    tool = next(s for s in out if s.name == "execute_tool bash")
    assert tool.attributes["corral.decision.outcome"] == "deny"  # on the span it affects
    created = DecisionRequest(Act.SESSION_CREATE, Subject("org_1"))
    traced.on_decision(created, decision(Outcome.ALLOW, "allowed"), 0.001)
    assert out[-1].parent_id is None and out[-1].trace_id != trace_id_of("turn_1")  # its own
    # The turn ended: it waits out the grace for late usage, then is handed over once.
    assert traced.due() == []
    clock.now += 2.5
    (ended,) = traced.due()
    assert ended.trace.input_tokens == 10 and not ended.recovered
    assert traced.due() == [] and len(traced) == 0
    traced.observe("ses_1", [ev(11, "usage", {"output_tokens": 1})])  # too late: not a new trace
    assert len(traced) == 0


def test_only_turns_traced_here_are_kept_and_state_stays_bounded() -> None:
    clock = Clock()
    traced, out = tracer({"ses_1"}, clock, max_turns=2)
    # An approval answered through this replica, for a turn pumped elsewhere: not traced here.
    traced.observe("ses_9", [ev(5, "approval.resolved", {"approval_id": "a"}, "turn_9", "ses_9")])
    assert len(traced) == 0
    # A turn taken over mid-way: kept, but its spans come from a rebuild when it ends.
    traced.observe("ses_1", turn_events("turn_2")[2:5])
    assert len(traced) == 1 and out == []
    use = DecisionRequest(Act.TOOL_USE, Subject("org_1", session_id="ses_1"), tool=ToolUse("bash"))
    traced.on_decision(use, decision(Outcome.ALLOW, "tool_allowed"), 0.0001)
    (joined,) = out  # decisions are not events: emitted live, under the rebuilt tool span's id
    assert joined.parent_id == tool_span_id("turn_2", "c1")
    out.clear()
    traced.observe("ses_1", turn_events("turn_2")[5:8])
    assert out == []
    traced.observe("ses_1", turn_events("turn_2")[8:])
    clock.now += 3
    (recovered,) = traced.due()
    assert recovered.recovered
    for n in range(3):
        traced.observe(f"ses_{n}", [ev(1, "turn.started", {}, f"turn_n{n}", f"ses_{n}")])
    assert len(traced) == 2 and traced.abandoned == 1  # the oldest went
    clock.now += 61  # sessions whose pump is elsewhere are forgotten after a minute of quiet
    traced.sweep()
    assert len(traced) == 1


def test_the_tree_nests_children_under_parents_in_start_order() -> None:
    turn = TurnTrace("turn_1")
    spans = [*fold(turn, turn_events()), turn_span(turn, INFO)]
    (root,) = build_tree(list(reversed(spans)))
    assert root.span.name == "invoke_agent helper"
    (tool,) = root.children
    assert [c.span.name for c in tool.children] == ["await_approval bash"]
