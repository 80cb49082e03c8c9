"""The pure mapper on traces recorded from the SDK-validated simulator
(``tests/fixtures/claude_agents``, see ``record.py``): live and history give the same ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corral.domain.events import EventDraft, EventType
from corral.runtimes.base import NativeEvent
from corral.runtimes.claude_agents.mapping import ClaudeAgentsMapper, Price

FIXTURES = Path(__file__).parents[2] / "fixtures" / "claude_agents"
SCENARIOS = ["text", "tool", "approval_allow", "approval_deny", "custom_tool", "interrupt", "error"]
SID = "sesn_trace"


def _events(raw: list[dict[str, Any]]) -> list[NativeEvent]:
    return [NativeEvent(SID, str(e.get("type")), e) for e in raw]


def live(name: str) -> list[NativeEvent]:
    lines = (FIXTURES / f"{name}.jsonl").read_text().splitlines()
    return _events([json.loads(line) for line in lines if line.strip()])


def history(name: str) -> list[NativeEvent]:
    return _events(json.loads((FIXTURES / f"{name}.history.json").read_text()))


def run(events: list[NativeEvent], mapper: ClaudeAgentsMapper | None = None) -> list[EventDraft]:
    mapper = mapper or ClaudeAgentsMapper(price=Price(input=3.0, output=15.0))
    mapper.begin_turn("turn_1")
    return [d for e in events for d in mapper.map(e)]


def of(drafts: list[EventDraft], kind: EventType) -> list[dict[str, Any]]:
    return [d.data for d in drafts if d.type is kind]


def unique(drafts: list[EventDraft]) -> list[EventDraft]:
    """What the recorder keeps: the first draft of each native id."""
    seen: set[str | None] = set()
    out = []
    for draft in drafts:
        if draft.native_id not in seen:
            seen.add(draft.native_id)
            out.append(draft)
    return out


@pytest.mark.parametrize("name", SCENARIOS)
def test_history_reproduces_live_ids(name: str) -> None:
    live_ids = {d.native_id for d in run(live(name)) if d.type is not EventType.MESSAGE_DELTA}
    history_ids = {d.native_id for d in run(history(name))}
    assert history_ids == live_ids
    ends = [d for d in unique(run(live(name))) if d.type is EventType.TURN_COMPLETED]
    assert len(ends) == 1 and ends[0].native_id == "turn-end:turn_1"


def test_text_turn() -> None:
    drafts = unique(run(live("text")))
    deltas = of(drafts, EventType.MESSAGE_DELTA)
    completed = of(drafts, EventType.MESSAGE_COMPLETED)
    assert completed[0]["content"] == [{"type": "text", "text": "Echo: hello wide world"}]
    assert len(deltas) >= 3 and "".join(d["text"] for d in deltas) == "Echo: hello wide world"
    assert {d["message_id"] for d in deltas} == {completed[0]["message_id"]}
    usage = of(drafts, EventType.USAGE)
    assert usage[0]["input_tokens"] > 0 and usage[0]["cost_usd"] > 0
    assert usage[0]["cost_source"] == "computed" and usage[0]["cost_micros"] > 0
    assert of(drafts, EventType.TURN_COMPLETED)[0]["stop_reason"] == "end_turn"
    types = [d.type for d in drafts]
    assert types.index(EventType.MESSAGE_DELTA) < types.index(EventType.MESSAGE_COMPLETED)


def test_usage_without_price_has_no_cost() -> None:
    usage = of(run(live("text"), ClaudeAgentsMapper()), EventType.USAGE)
    assert usage and "cost_usd" not in usage[0]


def test_builtin_tool_runs_without_asking() -> None:
    drafts = unique(run(live("tool")))
    call, result = of(drafts, EventType.TOOL_CALL)[0], of(drafts, EventType.TOOL_RESULT)[0]
    assert call["name"] == "read" and call["status"] == "running" and call["kind"] == "builtin"
    assert call["input"] == {"file_path": "hello.txt"}
    assert result["call_id"] == call["call_id"] and result["is_error"] is False
    assert "hello from the corral fixture" in result["output"]
    assert not of(drafts, EventType.APPROVAL_REQUESTED)


@pytest.mark.parametrize(
    ("name", "decision"), [("approval_allow", "allow_once"), ("approval_deny", "deny")]
)
def test_approval(name: str, decision: str) -> None:
    drafts = unique(run(live(name)))
    asked = of(drafts, EventType.APPROVAL_REQUESTED)[0]
    call = of(drafts, EventType.TOOL_CALL)[0]
    assert asked["native_approval_id"] == call["call_id"] and call["status"] == "pending"
    assert asked["name"] == "bash" and asked["input"] == {"command": "echo hi"}
    assert asked["choices"] == ["allow_once", "deny"]
    resolved = of(drafts, EventType.APPROVAL_RESOLVED)
    assert len(resolved) == 1 and resolved[0]["decision"] == decision
    result = of(drafts, EventType.TOOL_RESULT)[0]
    assert result["is_error"] is (decision == "deny")
    if decision == "deny":
        assert resolved[0]["message"] == "not now" and "not now" in result["output"]
    # The requires_action idle does not end the turn; only the final idle does.
    types = [d.type for d in drafts]
    assert types.count(EventType.TURN_COMPLETED) == 1
    assert types.index(EventType.APPROVAL_RESOLVED) < types.index(EventType.TURN_COMPLETED)
    assert not of(drafts, EventType.INPUT_REQUESTED)


def test_custom_tool_asks_the_client() -> None:
    drafts = unique(run(live("custom_tool")))
    call = of(drafts, EventType.TOOL_CALL)[0]
    assert call["kind"] == "custom_client" and call["name"] == "lookup"
    request = of(drafts, EventType.INPUT_REQUESTED)[0]
    assert request["kind"] == "client_tool" and request["call_ids"] == [call["call_id"]]
    idle = next(e for e in live("custom_tool") if e.type == "session.status_idle")
    assert request["request_id"] == idle.payload["id"]
    result = of(drafts, EventType.TOOL_RESULT)[0]
    assert result == {"call_id": call["call_id"], "output": "a pen for cattle", "is_error": False}
    assert of(drafts, EventType.TURN_COMPLETED)[0]["stop_reason"] == "end_turn"


def test_interrupt_ends_the_turn_cancelled() -> None:
    drafts = unique(run(live("interrupt")))
    assert of(drafts, EventType.TURN_COMPLETED)[0]["stop_reason"] == "cancelled"
    assert not of(drafts, EventType.MESSAGE_COMPLETED)


def test_upstream_error() -> None:
    drafts = unique(run(live("error")))
    error = of(drafts, EventType.ERROR)[0]
    assert error["code"] == "model_request_failed_error" and error["retryable"] is False
    assert "mock upstream error 400" in error["message"] and error["fatal"] is False
    end = of(drafts, EventType.TURN_COMPLETED)[0]
    assert end["stop_reason"] == "error" and end["native_stop_reason"] == "retries_exhausted"


def test_stale_idle_cannot_end_the_next_turn() -> None:
    mapper = ClaudeAgentsMapper()
    run(live("text"), mapper)
    mapper.begin_turn("turn_2")
    # A backfill that still shows the previous turn (the new input not sent yet).
    replay = [d for e in history("text") for d in mapper.map(e)]
    assert not [d for d in replay if d.type is EventType.TURN_COMPLETED]
    assert mapper.finish_turn()[0].native_id == "turn-end:turn_2"
    assert mapper.finish_turn() == []


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"type": "session.status_idle", "stop_reason": "weird"},
        {"type": "event_delta", "delta": None},
        {"type": "agent.tool_use", "input": [1, 2]},
        {"type": "agent.tool_result"},
        {"type": "user.tool_confirmation", "tool_use_id": 5},
        {"type": "span.model_request_end", "model_usage": "x"},
        {"type": "session.error", "error": "boom"},
        {"type": "agent.message", "content": "not a list"},
    ],
)
def test_odd_input_never_raises(payload: dict[str, Any]) -> None:
    mapper = ClaudeAgentsMapper()
    mapper.begin_turn("t")
    mapper.map(NativeEvent(SID, str(payload.get("type", "?")), payload))
