"""Replay traces recorded from the real Hermes 0.19.0 API server through the pure mapping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corral.domain.events import EventDraft, EventType, approval_resolved_native_id
from corral.runtimes.base import NativeEvent
from corral.runtimes.hermes.mapping import STREAM_GAP_EVENT, HermesMapper, split_approval_id
from corral.runtimes.hermes.runs import events_from_status

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "hermes"
SID = "corral_test"


def trace(name: str) -> tuple[list[NativeEvent], dict[str, Any]]:
    """A recorded run: its stream frames as native events, and its final status object."""
    lines = [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines()]
    status = lines.pop()["status"]
    return [NativeEvent(SID, frame["event"], frame) for frame in lines], status


def from_status(status: dict[str, Any]) -> list[NativeEvent]:
    return [NativeEvent(SID, kind, payload) for kind, payload in events_from_status(status)]


def run(mapper: HermesMapper, events: list[NativeEvent], seen: set[str]) -> list[EventDraft]:
    """Map and keep the first draft per native id, as the event store does."""
    drafts: list[EventDraft] = []
    for event in events:
        for draft in mapper.map(event):
            if draft.native_id in seen:
                continue
            seen.add(str(draft.native_id))
            drafts.append(draft)
    return drafts


def replay(name: str) -> list[EventDraft]:
    events, _ = trace(name)
    mapper = HermesMapper()
    mapper.begin_turn("trn_1")
    return run(mapper, events, set())


def of(drafts: list[EventDraft], kind: EventType) -> list[dict[str, Any]]:
    return [d.data for d in drafts if d.type is kind]


def test_text_run_streams_deltas_then_completes_once() -> None:
    drafts = replay("text")
    deltas = of(drafts, EventType.MESSAGE_DELTA)
    (completed,) = of(drafts, EventType.MESSAGE_COMPLETED)
    assert len(deltas) >= 2
    text = completed["content"][0]["text"]
    assert text == "Echo: hello world from corral" == "".join(d["text"] for d in deltas)
    (usage,) = of(drafts, EventType.USAGE)
    assert usage["input_tokens"] > 0 and usage["cumulative"] is False
    assert [d.type for d in drafts][-1] is EventType.TURN_COMPLETED
    assert of(drafts, EventType.TURN_COMPLETED) == [{"turn_id": "trn_1", "stop_reason": "end_turn"}]


def test_reasoning_available_is_not_reported_twice() -> None:
    # 0.19.0 sends the assistant's own text again as reasoning.available: it is not reasoning.
    assert all(d.native_type != "reasoning.available" for d in replay("text"))


def test_tool_call_and_result_pair_up() -> None:
    drafts = replay("tool")
    (call,) = of(drafts, EventType.TOOL_CALL)
    (result,) = of(drafts, EventType.TOOL_RESULT)
    assert call["name"] == "terminal" and call["input"] == {"preview": "echo hi"}
    assert result["call_id"] == call["call_id"] and result["is_error"] is False
    kinds = [d.type for d in drafts]
    assert kinds.index(EventType.TOOL_CALL) < kinds.index(EventType.TOOL_RESULT)


@pytest.mark.parametrize(
    ("name", "decision"), [("approval_once", "allow_once"), ("approval_deny", "deny")]
)
def test_approval_asked_and_resolved(name: str, decision: str) -> None:
    drafts = replay(name)
    (asked,) = of(drafts, EventType.APPROVAL_REQUESTED)
    (resolved,) = of(drafts, EventType.APPROVAL_RESOLVED)
    (call,) = of(drafts, EventType.TOOL_CALL)
    (result,) = of(drafts, EventType.TOOL_RESULT)
    native_id = asked["native_approval_id"]
    run_id, request_id = split_approval_id(native_id)
    assert run_id.startswith("run_") and request_id is None  # 0.19.0 sends no request_id
    assert asked["name"] == "terminal" and asked["call_id"] == call["call_id"]
    assert asked["input"]["command"] == "rm -rf /tmp/corral-hermes-test-dir"
    assert asked["choices"] == ["allow_once", "allow_session", "allow_always", "deny"]
    assert resolved == {"native_approval_id": native_id, "decision": decision, "by": "runtime"}
    ids = {d.type: d.native_id for d in drafts}
    assert ids[EventType.APPROVAL_RESOLVED] == approval_resolved_native_id(native_id)
    assert result["is_error"] is (decision == "deny")


def test_cancelled_run_ends_the_turn_cancelled() -> None:
    assert of(replay("cancel"), EventType.TURN_COMPLETED)[-1]["stop_reason"] == "cancelled"


def test_failed_run_reports_the_upstream_status() -> None:
    drafts = replay("error")
    (error,) = of(drafts, EventType.ERROR)
    assert error["http_status"] == 400 and "mock upstream error" in error["message"]
    assert of(drafts, EventType.TURN_COMPLETED)[-1]["stop_reason"] == "error"


@pytest.mark.parametrize("name", ["text", "tool", "approval_once", "cancel", "error"])
def test_reconciled_outcome_dedupes_with_the_live_one(name: str) -> None:
    events, status = trace(name)
    live = HermesMapper()
    live.begin_turn("trn_1")
    seen: set[str] = set()
    run(live, events, seen)
    # The status poll after the end adds nothing...
    assert run(live, from_status(status), seen) == []
    # ...and a fresh mapper (another Corral process) rebuilds the outcome under the same ids.
    fresh = HermesMapper()
    fresh.begin_turn("trn_1")
    rebuilt = fresh.map(from_status(status)[0])
    assert rebuilt and all(d.native_id in seen for d in rebuilt)


def test_a_gap_is_reported_once() -> None:
    mapper = HermesMapper()
    mapper.begin_turn("trn_1")
    gap = NativeEvent(SID, STREAM_GAP_EVENT, {"run_id": "run_1", "reason": "dropped"})
    seen: set[str] = set()
    drafts = run(mapper, [gap, gap], seen)
    assert [d.type for d in drafts] == [EventType.STREAM_GAP]
    assert drafts[0].data["reason"] == "dropped"


def test_reconciled_approval_joins_the_one_already_seen_or_takes_the_next_ordinal() -> None:
    events, _ = trace("approval_once")
    run_id = events[0].payload["run_id"]
    waiting = {"run_id": run_id, "status": "waiting_for_approval"}
    mapper = HermesMapper()
    mapper.begin_turn("trn_1")
    seen: set[str] = set()
    asked = run(mapper, events[:2], seen)  # tool.started, approval.request
    assert run(mapper, from_status(waiting), seen) == []
    run(mapper, events[2:4], seen)  # approval.responded, tool.completed
    # A second approval raised while the stream was down comes back as the run's second one.
    (again,) = run(mapper, from_status(waiting), seen)
    assert again.data["native_approval_id"] == f"{run_id}/2"
    assert asked[-1].data["native_approval_id"] == f"{run_id}/1"


def test_outcome_rebuilt_from_stored_messages_belongs_to_the_open_turn() -> None:
    mapper = HermesMapper()
    mapper.begin_turn("trn_9")
    drafts = mapper.map(NativeEvent(SID, "run.completed", {"run_id": None, "output": "hi"}))
    assert [d.native_id for d in drafts] == ["message:turn:trn_9", "turn-end:trn_9"]
    assert mapper.finish_turn() == []


def test_a_late_run_never_ends_the_next_turn() -> None:
    mapper = HermesMapper()
    mapper.begin_turn("trn_1")
    mapper.map(NativeEvent(SID, "message.delta", {"run_id": "run_a", "delta": "x"}))
    mapper.begin_turn("trn_2")
    late = mapper.map(NativeEvent(SID, "run.completed", {"run_id": "run_a", "output": "x"}))
    assert [d.data for d in late if d.type is EventType.TURN_COMPLETED] == [
        {"turn_id": "trn_1", "stop_reason": "end_turn"}
    ]
    ends = mapper.map(NativeEvent(SID, "run.completed", {"run_id": "run_b", "output": "y"}))
    assert ends[-1].native_id == "turn-end:trn_2"


@pytest.mark.parametrize(
    "payload",
    [{}, {"run_id": 5}, {"run_id": "r", "delta": None}, {"run_id": "r", "usage": "x"},
     {"run_id": "r", "choice": "maybe"}, {"run_id": "r", "choices": "once"}, {"run_id": "r", "tool": 3}],
)  # fmt: skip
def test_odd_frames_never_raise(payload: dict[str, Any]) -> None:
    mapper = HermesMapper()
    mapper.begin_turn("trn_1")
    for kind in ("message.delta", "tool.started", "tool.completed", "approval.request",
                 "approval.responded", "run.completed", "run.failed", "run.cancelled", "x"):  # fmt: skip
        mapper.map(NativeEvent(SID, kind, dict(payload)))


def test_an_approval_nobody_answered_is_resolved_when_hermes_gives_up() -> None:
    # Stopped while waiting (the same happens when Hermes' approval timeout passes): Hermes
    # refuses the command and says so only through the tool's error.
    drafts = replay("approval_stop")
    (asked,) = of(drafts, EventType.APPROVAL_REQUESTED)
    (resolved,) = of(drafts, EventType.APPROVAL_RESOLVED)
    assert resolved["native_approval_id"] == asked["native_approval_id"]
    assert resolved["decision"] == "deny" and resolved["by"] == "runtime"
    kinds = [d.type for d in drafts]
    assert kinds.index(EventType.APPROVAL_RESOLVED) < kinds.index(EventType.TOOL_RESULT)
    assert of(drafts, EventType.TOOL_RESULT)[0]["is_error"] is True
    assert of(drafts, EventType.TURN_COMPLETED)[-1]["stop_reason"] == "cancelled"


def test_a_run_interrupted_by_a_restart_fails_the_turn() -> None:
    # Newer builds mark runs a gateway restart cut short as "interrupted".
    mapper = HermesMapper()
    mapper.begin_turn("trn_1")
    (event,) = from_status({"run_id": "run_x", "status": "interrupted"})
    drafts = mapper.map(event)
    assert [d.type for d in drafts] == [EventType.ERROR, EventType.TURN_COMPLETED]
    assert drafts[-1].data["stop_reason"] == "error"
