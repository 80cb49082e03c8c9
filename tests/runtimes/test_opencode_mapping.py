"""Replay traces recorded from the real OpenCode 1.18.33 through the pure mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corral.domain.events import EventDraft, EventType
from corral.runtimes.base import NativeEvent
from corral.runtimes.opencode.mapping import OpenCodeMapper, session_of

FIXTURES = Path(__file__).parent.parent / "fixtures" / "opencode"


def replay(name: str, *, turn_id: str = "trn_1") -> list[EventDraft]:
    frames = [
        json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines() if line
    ]
    mapper = OpenCodeMapper()
    mapper.begin_turn(turn_id)
    drafts: list[EventDraft] = []
    seen: set[str] = set()
    for frame in frames:
        sid = session_of(frame)
        if sid is None:
            continue
        for draft in mapper.map(NativeEvent(sid, frame["type"], frame)):
            # The store keeps the first draft per native id; mimic that here.
            if draft.native_id is not None and draft.native_id in seen:
                continue
            if draft.native_id is not None:
                seen.add(draft.native_id)
            drafts.append(draft)
    return drafts


def types(drafts: list[EventDraft]) -> list[EventType]:
    return [d.type for d in drafts]


def test_text_turn_streams_deltas_then_completes_once() -> None:
    drafts = replay("text")
    deltas = [d for d in drafts if d.type is EventType.MESSAGE_DELTA]
    completed = [d for d in drafts if d.type is EventType.MESSAGE_COMPLETED]
    assert len(deltas) >= 2
    assert len(completed) == 1
    full = completed[0].data["content"][0]["text"]
    assert "".join(d.data["text"] for d in deltas) == full
    assert full.startswith("Echo:")
    assert types(drafts).count(EventType.TURN_COMPLETED) == 1
    assert drafts[-1].type is EventType.TURN_COMPLETED
    assert drafts[-1].data["stop_reason"] == "end_turn"


def test_user_echo_is_not_reported_as_assistant_text() -> None:
    for draft in replay("text"):
        if draft.type is EventType.MESSAGE_COMPLETED:
            assert draft.data["content"][0]["text"].startswith("Echo:")
        if draft.type is EventType.MESSAGE_DELTA:
            assert draft.data["role"] == "assistant"


def test_usage_is_reported_once_per_assistant_message_with_cost() -> None:
    usage = [d for d in replay("text") if d.type is EventType.USAGE]
    assert len(usage) == 1
    assert usage[0].data["input_tokens"] > 0 and usage[0].data["output_tokens"] > 0
    assert usage[0].data["cost_usd"] > 0 and usage[0].data["cost_micros"] > 0


def test_tool_call_progresses_to_a_result() -> None:
    drafts = replay("tool")
    calls = [d for d in drafts if d.type is EventType.TOOL_CALL]
    results = [d for d in drafts if d.type is EventType.TOOL_RESULT]
    assert [c.data["status"] for c in calls] == ["pending", "running"]
    assert calls[-1].data["name"] == "read" and calls[-1].data["input"]
    assert len(results) == 1 and results[0].data["is_error"] is False
    assert results[0].data["call_id"] == calls[0].data["call_id"]
    assert "duration_ms" in results[0].data


def test_tool_error_is_a_failed_result() -> None:
    results = [d for d in replay("tool_error") if d.type is EventType.TOOL_RESULT]
    assert len(results) == 1 and results[0].data["is_error"] is True


@pytest.mark.parametrize(
    ("name", "decision"), [("permission_once", "allow_once"), ("permission_reject", "deny")]
)
def test_permission_asked_and_replied(name: str, decision: str) -> None:
    drafts = replay(name)
    asked = [d for d in drafts if d.type is EventType.APPROVAL_REQUESTED]
    replied = [d for d in drafts if d.type is EventType.APPROVAL_RESOLVED]
    assert len(asked) == 1 and len(replied) == 1
    assert asked[0].data["name"] == "bash"
    assert asked[0].data["input"]["command"] == "echo hi"
    assert asked[0].data["native_approval_id"].startswith("per_")
    assert replied[0].data["decision"] == decision
    assert replied[0].data["native_approval_id"] == asked[0].data["native_approval_id"]
    # Corral records a human's answer under the same key, so the runtime's echo dedupes.
    assert replied[0].native_id == f"approval-resolved:{asked[0].data['native_approval_id']}"
    assert types(drafts).count(EventType.TURN_COMPLETED) == 1


def test_cancel_maps_to_cancelled_stop_reason_once_despite_double_idle() -> None:
    drafts = replay("cancel")
    ends = [d for d in drafts if d.type is EventType.TURN_COMPLETED]
    assert len(ends) == 1 and ends[0].data["stop_reason"] == "cancelled"
    errors = [d for d in drafts if d.type is EventType.ERROR]
    assert len(errors) == 1 and errors[0].data["code"] == "MessageAbortedError"


def test_upstream_error_maps_to_error_then_failed_turn() -> None:
    drafts = replay("error")
    errors = [d for d in drafts if d.type is EventType.ERROR]
    assert len(errors) == 1
    assert errors[0].data["code"] == "APIError" and errors[0].data["http_status"] == 400
    ends = [d for d in drafts if d.type is EventType.TURN_COMPLETED]
    assert len(ends) == 1 and ends[0].data["stop_reason"] == "error"


def test_history_rebuilds_the_same_native_ids_as_the_live_stream() -> None:
    live = {d.native_id for d in replay("permission_once") if d.type is not EventType.MESSAGE_DELTA}
    history = json.loads((FIXTURES / "permission_once.history.json").read_text())
    mapper = OpenCodeMapper()
    mapper.begin_turn("trn_1")
    rebuilt: set[str | None] = set()
    for message in history:
        info = message["info"]
        sid = info["sessionID"]
        rebuilt |= {
            d.native_id
            for d in mapper.map(NativeEvent(sid, "message.updated", {"properties": {"info": info}}))
        }
        for part in message["parts"]:
            payload = {"properties": {"part": part}}
            rebuilt |= {
                d.native_id for d in mapper.map(NativeEvent(sid, "message.part.updated", payload))
            }
    # History keeps final states only: a tool's "pending" step cannot be rebuilt, everything else is.
    content = {
        n
        for n in live
        if n and n.split(":")[0] in ("text", "tool", "usage") and not n.endswith(":pending")
    }
    assert content and content <= rebuilt


def test_garbage_never_raises() -> None:
    mapper = OpenCodeMapper()
    for payload in (
        {},
        {"properties": None},
        {"properties": {"part": "x"}},
        {"properties": {"info": []}},
    ):
        for kind in ("message.part.updated", "message.updated", "session.status", "permission.asked",
                     "permission.replied", "session.error", "message.part.delta", "session.idle"):  # fmt: skip
            assert isinstance(mapper.map(NativeEvent("ses_x", kind, payload)), list)


def test_session_of_finds_the_session_wherever_the_event_keeps_it() -> None:
    assert (
        session_of({"type": "message.part.updated", "properties": {"part": {"sessionID": "s1"}}})
        == "s1"
    )
    assert (
        session_of({"type": "message.updated", "properties": {"info": {"sessionID": "s2"}}}) == "s2"
    )
    assert session_of({"type": "session.updated", "properties": {"info": {"id": "s3"}}}) == "s3"
    assert session_of({"type": "server.heartbeat", "properties": {}}) is None
