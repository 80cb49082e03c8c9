"""The pure mapper on run streams recorded from the SDK-validated simulator
(``tests/fixtures/cursor/*.jsonl``, written by ``tests/fixtures/cursor/record.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corral.domain.events import EventDraft, EventType
from corral.runtimes.base import NativeEvent
from corral.runtimes.cursor.mapping import GAP, CursorMapper, native

FIXTURES = Path(__file__).parents[2] / "fixtures" / "cursor"
AGENT = "bc-00000000-0000-4000-8000-000000000000"


def trace(name: str) -> list[NativeEvent]:
    frames = [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines()]
    run_id = frames[0]["data"]["runId"]
    return [native(AGENT, f["event"], run_id, f["id"], f["data"]) for f in frames]


def mapped(events: list[NativeEvent], mapper: CursorMapper | None = None) -> list[EventDraft]:
    mapper = mapper or CursorMapper()
    mapper.begin_turn("turn-1")
    return [d for e in events for d in mapper.map(e)]


def types(drafts: list[EventDraft]) -> list[str]:
    return [d.type.value for d in drafts]


def test_text_run() -> None:
    drafts = mapped(trace("text"))
    deltas = [d for d in drafts if d.type is EventType.MESSAGE_DELTA]
    assert len(deltas) >= 3
    assert "".join(d.data["text"] for d in deltas) == "Echo: hello world from corral"
    assert types(drafts)[-3:] == ["usage", "message.completed", "turn.completed"]
    completed = drafts[-2].data
    assert completed["content"] == [{"type": "text", "text": "Echo: hello world from corral"}]
    assert drafts[-1].data["stop_reason"] == "end_turn"
    assert drafts[-3].data["input_tokens"] > 0
    # Every delta has its own id, and the raw interaction_update copies add nothing.
    assert len({d.native_id for d in drafts}) == len(drafts)


def test_tool_run() -> None:
    drafts = mapped(trace("tool"))
    call, result = (d for d in drafts if d.type in (EventType.TOOL_CALL, EventType.TOOL_RESULT))
    assert call.data["name"] == "run_terminal_cmd" and call.data["input"] == {"command": "echo hi"}
    assert result.data["call_id"] == call.data["call_id"]
    assert result.data["is_error"] is False
    assert result.data["output"]["success"]["stdout"] == "hi\n"
    assert types(drafts).index("tool.result") < types(drafts).index("turn.completed")


def test_tool_error_is_inferred_from_the_result() -> None:
    drafts = mapped(trace("tool_error"))
    (result,) = (d for d in drafts if d.type is EventType.TOOL_RESULT)
    assert result.data["is_error"] is True
    assert drafts[-1].data["stop_reason"] == "end_turn"


def test_error_run() -> None:
    drafts = mapped(trace("error"))
    assert types(drafts) == ["error", "turn.completed"]
    assert "400" in drafts[0].data["message"]
    assert drafts[1].data["stop_reason"] == "error"


def test_cancelled_run() -> None:
    drafts = mapped(trace("cancel"))
    assert drafts[-1].type is EventType.TURN_COMPLETED
    assert drafts[-1].data["stop_reason"] == "cancelled"


@pytest.mark.parametrize("name", ["text", "tool", "tool_error", "error", "cancel"])
def test_replay_gives_the_same_native_ids(name: str) -> None:
    """History replays the run's stream: a fresh mapper yields the same ids, and a replay into
    the live mapper adds nothing new (the recorder's dedupe would store nothing twice)."""
    events = trace(name)
    live = CursorMapper()
    first = mapped(events, live)
    assert [d.native_id for d in mapped(events)] == [d.native_id for d in first]
    live.begin_turn("turn-2")
    again = [d for e in events for d in live.map(e)]
    assert {d.native_id for d in again} <= {d.native_id for d in first}
    assert not any(d.type is EventType.TURN_COMPLETED for d in again)


def test_resume_midway_reports_the_call_before_its_result() -> None:
    events = [e for e in trace("tool") if e.payload["data"].get("status") != "running"]
    drafts = mapped(events)
    assert types(drafts).index("tool.call") < types(drafts).index("tool.result")


def test_expired_stream_is_a_gap_and_the_result_survives() -> None:
    run = "run-00000000-0000-4000-8000-000000000001"
    events = [
        native(AGENT, GAP, run, None, {"reason": "stream_expired"}),
        native(AGENT, "result", run, None, {"runId": run, "status": "FINISHED", "text": "done"}),
    ]
    drafts = mapped(events)
    assert types(drafts) == ["stream.gap", "message.completed", "turn.completed"]
    assert drafts[0].data["reason"] == "stream_expired"


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"run_id": 3},
        {"run_id": "r", "data": "nope"},
        {"run_id": "r", "data": {"callId": 5}},
        {"run_id": "r", "event_id": {}, "data": {"text": None}},
    ],
)
def test_odd_input_never_raises(payload: dict[str, Any]) -> None:
    mapper = CursorMapper()
    for kind in ("assistant", "thinking", "tool_call", "result", "error", "interaction_update"):
        mapper.map(NativeEvent(AGENT, kind, payload))
    assert mapper.finish_turn() == []
