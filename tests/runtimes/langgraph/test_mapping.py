"""The LangGraph mapper replaying traces recorded from a real ``langgraph dev`` (langgraph-api
0.16.7, deepagents 0.7.32; see ``tests/fixtures/langgraph/record.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corral.domain.events import EventDraft, EventType
from corral.runtimes.base import NativeEvent
from corral.runtimes.langgraph.mapping import RUN_END, LangGraphMapper
from corral.runtimes.langgraph.streams import frame_data, resume_marker
from corral.runtimes.sse import SseFrame, malformed_frames

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "langgraph"


def _events(name: str) -> list[NativeEvent]:
    lines = (FIXTURES / f"{name}.jsonl").read_text().splitlines()
    return [NativeEvent("thread", e["type"], e["payload"]) for e in map(json.loads, lines)]


def _history(name: str) -> list[NativeEvent]:
    items: list[dict[str, Any]] = json.loads((FIXTURES / f"{name}.history.json").read_text())
    return [NativeEvent("thread", e["type"], e["payload"]) for e in items]


def _map(events: list[NativeEvent]) -> list[EventDraft]:
    mapper = LangGraphMapper()
    mapper.begin_turn("turn_1")
    return [d for e in events for d in mapper.map(e)]


def _types(drafts: list[EventDraft]) -> list[str]:
    """Types in order, consecutive repeats collapsed (deltas come in runs)."""
    out: list[str] = []
    for d in drafts:
        if not out or out[-1] != d.type.value:
            out.append(d.type.value)
    return out


def _unique(drafts: list[EventDraft]) -> list[EventDraft]:
    """What the event log keeps: the first draft of each native id."""
    seen: set[str | None] = set()
    kept = []
    for d in drafts:
        if d.native_id not in seen:
            seen.add(d.native_id)
            kept.append(d)
    return kept


def test_text_turn_streams_deltas_then_the_message_usage_and_end() -> None:
    drafts = _map(_events("text"))
    assert _types(drafts) == ["message.delta", "message.completed", "usage", "turn.completed"]
    deltas = [d.data["text"] for d in drafts if d.type is EventType.MESSAGE_DELTA]
    assert len(deltas) >= 3
    done = next(d for d in drafts if d.type is EventType.MESSAGE_COMPLETED)
    assert "".join(deltas) == done.data["content"][0]["text"] == "Echo: hello there dear agent"
    usage = next(d for d in drafts if d.type is EventType.USAGE)
    assert usage.data["input_tokens"] > 0 and usage.data["output_tokens"] > 0
    assert drafts[-1].data["stop_reason"] == "end_turn"
    assert drafts[-1].native_id == "turn-end:turn_1"


def test_tool_turn_reports_the_call_before_its_result() -> None:
    drafts = _unique(_map(_events("tool")))
    call = next(d for d in drafts if d.type is EventType.TOOL_CALL)
    result = next(d for d in drafts if d.type is EventType.TOOL_RESULT)
    assert drafts.index(call) < drafts.index(result)
    assert call.data["name"] == "get_weather" and call.data["input"] == {"city": "Paris"}
    assert result.data["call_id"] == call.data["call_id"]
    assert result.data == {**result.data, "output": "It is sunny in Paris.", "is_error": False}
    assert drafts[-1].type is EventType.TURN_COMPLETED


@pytest.mark.parametrize("name", ["approve", "deny"])
def test_approval_pauses_the_turn_and_the_resumed_run_ends_it(name: str) -> None:
    events = _events(name)
    first_end = next(i for i, e in enumerate(events) if e.type == RUN_END)
    mapper = LangGraphMapper()
    mapper.begin_turn("turn_1")
    paused = [d for e in events[: first_end + 1] for d in mapper.map(e)]
    asked = [d for d in paused if d.type is EventType.APPROVAL_REQUESTED]
    assert len(asked) == 1 and asked[0].data["name"] == "send_email"
    assert asked[0].data["choices"] == ["allow_once", "deny"]
    assert asked[0].data["call_id"] and asked[0].data["call_id"].startswith("call_")
    assert not any(d.type is EventType.TURN_COMPLETED for d in paused)  # a pause, not an end
    rest = [d for e in events[first_end + 1 :] for d in mapper.map(e)]
    result = next(d for d in rest if d.type is EventType.TOOL_RESULT)
    assert ("rejected" in result.data["output"]) is (name == "deny")
    assert rest[-1].type is EventType.TURN_COMPLETED and rest[-1].data["stop_reason"] == "end_turn"


def test_plain_interrupt_asks_the_caller_a_question() -> None:
    drafts = _map(_events("input"))
    asked = next(d for d in drafts if d.type is EventType.INPUT_REQUESTED)
    assert asked.data["kind"] == "question" and asked.data["prompt"] == "Which city?"
    assert asked.native_id == f"interrupt:{asked.data['request_id']}"
    result = next(d for d in drafts if d.type is EventType.TOOL_RESULT)
    assert result.data["output"] == "The user answered: Paris"


def test_upstream_error_fails_the_turn() -> None:
    drafts = _map(_events("error"))
    assert _types(drafts) == ["error", "turn.completed"]
    assert drafts[0].data["code"] == "OpenAIInvalidRequestError"
    assert drafts[0].data["http_status"] == 400
    assert drafts[-1].data["stop_reason"] == "error"


def test_cancelled_run_ends_the_turn_cancelled() -> None:
    drafts = _map(_events("cancel"))
    assert drafts[-1].type is EventType.TURN_COMPLETED
    assert drafts[-1].data["stop_reason"] == "cancelled"


@pytest.mark.parametrize("name", ["text", "tool", "approve", "deny", "input", "error", "cancel"])
def test_history_reproduces_the_live_native_ids(name: str) -> None:
    """Backfill is exactly-once: every id history yields was (or would be) seen live."""
    live = {d.native_id for d in _map(_events(name))}
    mapper = LangGraphMapper()
    mapper.begin_turn("turn_1")
    backfill = [d for e in _history(name) for d in mapper.map(e)]
    assert backfill or name == "cancel", "history rebuilt nothing"  # cancelled: nothing stored
    assert {d.native_id for d in backfill} <= live
    ended = mapper.finish_turn()
    stop = {"error": "error", "cancel": "cancelled"}.get(name, "end_turn")
    assert ended[0].data["stop_reason"] == stop and ended[0].native_id == "turn-end:turn_1"


def test_backfilled_interrupt_does_not_hold_a_later_run_end() -> None:
    mapper = LangGraphMapper()
    mapper.begin_turn("turn_1")
    interrupt = {"__interrupt__": [{"id": "i1", "value": {"action_requests": []}}]}
    mapper.map(NativeEvent("t", "updates", {"history": True, "data": interrupt}))
    end = {"run_id": "r2", "status": "success", "thread_status": "idle"}
    assert mapper.map(NativeEvent("t", RUN_END, end))[-1].type is EventType.TURN_COMPLETED


def test_late_end_of_the_paused_run_does_not_end_the_resumed_turn() -> None:
    mapper = LangGraphMapper()
    mapper.begin_turn("turn_1")
    mapper.map(NativeEvent("t", "metadata", {"data": {"run_id": "r1"}}))
    mapper.map(NativeEvent("t", "metadata", {"data": {"run_id": "r2"}}))  # the resume
    late = {"run_id": "r1", "status": "success", "thread_status": "busy"}
    assert mapper.map(NativeEvent("t", RUN_END, late)) == []
    end = {"run_id": "r2", "status": "success", "thread_status": "idle"}
    assert mapper.map(NativeEvent("t", RUN_END, end))[-1].type is EventType.TURN_COMPLETED


@pytest.mark.parametrize(
    "event",
    [
        NativeEvent("t", "messages", {"data": "not a list"}),
        NativeEvent("t", "messages", {"data": [None, None]}),
        NativeEvent("t", "updates", {"data": {"model": {"messages": "x"}}}),
        NativeEvent("t", "updates", {"data": {"__interrupt__": [{"value": 1}]}}),
        NativeEvent("t", "updates", {"data": {"tools": {"messages": [{"type": "tool"}]}}}),
        NativeEvent("t", "error", {"data": None}),
        NativeEvent("t", "values", {"data": {}}),
        NativeEvent("t", "custom", {}),
    ],
)
def test_odd_input_never_raises(event: NativeEvent) -> None:
    mapper = LangGraphMapper()
    mapper.begin_turn("turn_1")
    assert isinstance(mapper.map(event), list)


def test_finish_turn_without_a_turn_is_empty() -> None:
    assert LangGraphMapper().finish_turn() == []


def test_resume_marker_steps_back_one_millisecond() -> None:
    # The in-memory server repeats "<ms>-0" within a millisecond and replays ids > the marker.
    assert resume_marker("1795635412268-0") == "1795635412267-0"
    assert resume_marker("garbage") == "-"


def test_garbled_frames_are_counted_not_raised() -> None:
    before = malformed_frames["langgraph"]
    assert frame_data(SseFrame("messages", "{not json")) is None
    assert frame_data(SseFrame("updates", '"a string"')) is None
    assert frame_data(SseFrame("messages", "[1, 2]")) == [1, 2]
    assert malformed_frames["langgraph"] == before + 2
