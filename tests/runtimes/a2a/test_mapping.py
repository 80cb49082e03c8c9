"""The A2A mapper on traces recorded from a2a-sdk 1.3.0 (tests/fixtures/a2a/record.py), both
protocol versions: what each scenario maps to, and that a task rebuilt from ``tasks/get`` maps
to the same native ids as the live stream (so backfill dedupes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corral.domain.events import EventDraft, EventType, turn_end_native_id
from corral.runtimes.a2a.mapping import (
    GAP,
    RESUMED,
    TASK,
    A2AMapper,
    classify,
    parts_text,
    state_of,
)
from corral.runtimes.base import NativeEvent

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "a2a"
PROTOCOLS = ["1.0", "0.3"]


def trace(name: str, protocol: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}-{protocol}.json").read_text())  # type: ignore[no-any-return]


def native(result: Any) -> NativeEvent:
    item = classify(result)
    assert item is not None, result
    return NativeEvent("ctx", item[0], item[1])


def run(results: list[Any], turn: str = "t1", mapper: A2AMapper | None = None) -> list[EventDraft]:
    mapper = mapper or A2AMapper()
    mapper.begin_turn(turn)
    return [d for r in results for d in mapper.map(native(r))]


def types(drafts: list[EventDraft]) -> list[str]:
    return [d.type.value for d in drafts]


def completed_text(drafts: list[EventDraft]) -> str:
    return "".join(
        d.data["content"][0]["text"] for d in drafts if d.type is EventType.MESSAGE_COMPLETED
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_text_turn(protocol: str) -> None:
    drafts = run(trace("text", protocol)["stream"])
    deltas = [d for d in drafts if d.type is EventType.MESSAGE_DELTA]
    assert len(deltas) >= 3
    assert "".join(d.data["text"] for d in deltas) == "Echo: hello world from corral"
    assert completed_text(drafts) == "Echo: hello world from corral"
    assert types(drafts)[-1] == "turn.completed"
    assert drafts[-1].data["stop_reason"] == "end_turn"
    assert drafts[-1].native_id == turn_end_native_id("t1")
    assert len({d.native_id for d in drafts}) == len(drafts)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", ["text", "ask", "error", "cancel"])
def test_history_reproduces_live_ids(protocol: str, name: str) -> None:
    recorded = trace(name, protocol)
    live = {d.native_id for d in run(recorded["stream"]) if d.type is not EventType.MESSAGE_DELTA}
    backfill = run([recorded["task"]])
    assert backfill, "tasks/get rebuilds the turn"
    assert {d.native_id for d in backfill} - {None} <= live | {turn_end_native_id("t1")}
    ends = [d for d in backfill if d.type is EventType.TURN_COMPLETED]
    assert len(ends) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_input_required_round_trip(protocol: str) -> None:
    recorded = trace("ask", protocol)
    drafts = run(recorded["stream"])
    asked = [d for d in drafts if d.type is EventType.INPUT_REQUESTED]
    assert len(asked) == 1
    assert asked[0].data == {
        "request_id": recorded["task"]["id"],
        "kind": "question",
        "prompt": "What colour?",
    }
    after = types(drafts)[types(drafts).index("input.requested") :]
    assert "turn.completed" in after and "Echo: blue" in completed_text(drafts)
    assert drafts[-1].data["stop_reason"] == "end_turn"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_failed_task_is_an_error_turn(protocol: str) -> None:
    drafts = run(trace("error", protocol)["stream"])
    assert types(drafts) == ["error", "turn.completed"]
    assert drafts[0].data["code"] == "task_failed"
    assert "mock upstream error 400" in drafts[0].data["message"]
    assert drafts[1].data["stop_reason"] == "error"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_canceled_task(protocol: str) -> None:
    drafts = run(trace("cancel", protocol)["stream"])
    assert drafts[-1].data["stop_reason"] == "cancelled"
    # The partial reply is still reported once as a whole message.
    assert len([d for d in drafts if d.type is EventType.MESSAGE_COMPLETED]) == 1


def test_running_snapshot_does_not_double_live_chunks() -> None:
    """A tasks/get taken mid-stream is ahead of the live stream; chunks after it that it
    already holds must not be appended twice."""
    recorded = trace("text", "1.0")["stream"]
    mapper = A2AMapper()
    mapper.begin_turn("t1")
    drafts = [d for r in recorded[:3] for d in mapper.map(native(r))]
    ahead = json.loads(json.dumps(recorded[0]))
    ahead["task"]["status"]["state"] = "TASK_STATE_WORKING"
    chunks = [r["artifactUpdate"]["artifact"] for r in recorded[2:5]]
    ahead["task"]["artifacts"] = [{**chunks[0], "parts": [c["parts"][0] for c in chunks]}]
    drafts += mapper.map(native(ahead))
    drafts += [d for r in recorded[3:] for d in mapper.map(native(r))]
    assert completed_text(drafts) == "Echo: hello world from corral"


def test_resumed_last_chunk_waits_for_the_whole_task() -> None:
    recorded = trace("text", "1.0")
    mapper = A2AMapper()
    mapper.begin_turn("t1")
    drafts: list[EventDraft] = []
    for result in recorded["stream"][:2] + recorded["stream"][4:-1]:  # two chunks were missed
        event = native(result)
        if event.type == "artifact-update":
            event = NativeEvent("ctx", event.type, {**event.payload, RESUMED: True})
        drafts += mapper.map(event)
    assert not [d for d in drafts if d.type is EventType.MESSAGE_COMPLETED]
    drafts += mapper.map(native(recorded["task"]))  # what the adapter fetches at the end
    drafts += mapper.map(native(recorded["stream"][-1]))
    assert completed_text(drafts) == "Echo: hello world from corral"
    assert types(drafts).count("turn.completed") == 1


def test_old_task_does_not_end_a_new_turn() -> None:
    recorded = trace("text", "1.0")
    mapper = A2AMapper()
    run(recorded["stream"], "t1", mapper)
    mapper.begin_turn("t2")
    assert not [d for d in mapper.map(native(recorded["task"])) if d.type.value == "turn.completed"]
    assert mapper.turn_id == "t2"


def test_finish_turn_uses_the_last_state() -> None:
    mapper = A2AMapper()
    mapper.begin_turn("t1")
    stream = trace("cancel", "0.3")["stream"]
    for result in stream[:-1]:
        mapper.map(native(result))
    assert mapper.finish_turn()[0].data["stop_reason"] == "end_turn"
    mapper.begin_turn("t2")
    mapper.last_state = "canceled"
    assert mapper.finish_turn()[0].data["stop_reason"] == "cancelled"
    assert mapper.finish_turn() == []


def test_direct_message_reply_ends_the_turn() -> None:
    reply = {"kind": "message", "role": "agent", "messageId": "m9", "parts": [{"text": "hi"}]}
    drafts = run([reply])
    assert types(drafts) == ["message.completed", "turn.completed"]
    assert drafts[0].native_id == "msg:m9"


def test_gap_is_one_stream_gap() -> None:
    mapper = A2AMapper()
    mapper.begin_turn("t1")
    drafts = mapper.map(NativeEvent("ctx", GAP, {"reason": "lost", "context_id": "ctx"}))
    assert [(d.type, d.native_id) for d in drafts] == [(EventType.STREAM_GAP, "gap:t1")]


@pytest.mark.parametrize(
    "payload",
    [{}, {"status": "x"}, {"artifact": []}, {"artifact": {"artifactId": 3}}, {"history": "x"},
     {"status": {"state": None, "message": "x"}}, {"artifacts": [None, {"parts": 5}]}],
)  # fmt: skip
@pytest.mark.parametrize("kind", [TASK, "status-update", "artifact-update", "message", "other"])
def test_odd_input_never_raises(kind: str, payload: dict[str, Any]) -> None:
    mapper = A2AMapper()
    mapper.begin_turn("t1")
    mapper.map(NativeEvent("ctx", kind, payload))


def test_helpers_read_both_versions() -> None:
    assert state_of({"state": "TASK_STATE_INPUT_REQUIRED"}) == "input-required"
    assert state_of({"state": "input-required"}) == "input-required"
    assert parts_text([{"kind": "text", "text": "a"}, {"text": "b"}, {"data": {}}]) == "ab"
    assert classify({"statusUpdate": {"taskId": "t"}}) == ("status-update", {"taskId": "t"})
    assert classify({"kind": "artifact-update", "x": 1}) == (
        "artifact-update",
        {"kind": "artifact-update", "x": 1},
    )
    assert classify({"id": "t", "status": {}})[0] == TASK  # type: ignore[index]
    assert classify("nope") is None
