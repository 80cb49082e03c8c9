"""Replay frames recorded from the real openclaw 2026.9.6 gateway through the pure mapping.

Each fixture (tests/fixtures/openclaw/*.json, recorded by record.py) holds every WebSocket frame
one operator connection saw during one turn, and at the end the session's ``chat.history``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corral.domain.events import EventDraft, EventType, approval_resolved_native_id
from corral.runtimes.base import NativeEvent
from corral.runtimes.openclaw.adapter import current_turn
from corral.runtimes.openclaw.client import parse_frame
from corral.runtimes.openclaw.mapping import OpenClawMapper, message_id, session_of
from corral.runtimes.sse import malformed_frames

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "openclaw"
TURN = "trn_test"


def trace(name: str) -> tuple[str, list[NativeEvent], list[dict[str, Any]]]:
    """A recorded turn: its session key, its events (as the bus routes them), its history."""
    frames = json.loads((FIXTURES / f"{name}.json").read_text())
    history = next(f["payload"] for f in frames if f.get("id") == "history")
    key = history["sessionKey"]
    events = [
        NativeEvent(key, f["event"], f["payload"])
        for f in frames
        if f.get("type") == "event" and session_of(f["event"], f.get("payload") or {}) == key
    ]
    return key, events, history["messages"]


def run(events: list[NativeEvent], seen: set[str] | None = None) -> list[EventDraft]:
    """Map with a fresh mapper for an open turn, keeping the first draft per native id."""
    mapper = OpenClawMapper()
    mapper.begin_turn(TURN)
    seen = set() if seen is None else seen
    drafts = []
    for event in events:
        for draft in mapper.map(event):
            if draft.native_id not in seen:
                seen.add(str(draft.native_id))
                drafts.append(draft)
    return drafts


def of(drafts: list[EventDraft], kind: EventType) -> list[dict[str, Any]]:
    return [d.data for d in drafts if d.type is kind]


def history_events(key: str, messages: list[dict[str, Any]]) -> list[NativeEvent]:
    rows = current_turn(messages, None)
    return [
        NativeEvent(
            key, "session.message", {"sessionKey": key, "message": m, "messageId": message_id(m)}
        )
        for m in rows
    ]


def test_text_turn() -> None:
    _, events, _ = trace("text")
    drafts = run(events)
    deltas = of(drafts, EventType.MESSAGE_DELTA)
    completed = of(drafts, EventType.MESSAGE_COMPLETED)
    assert len(deltas) >= 2  # the gateway coalesces chunks, but not all of them
    assert "".join(d["text"] for d in deltas) == completed[0]["content"][0]["text"]
    assert completed[0]["content"][0]["text"].startswith("Echo: ")
    usage = of(drafts, EventType.USAGE)
    assert usage[0]["input_tokens"] > 0 and usage[0]["cost_usd"] > 0 and usage[0]["cost_micros"] > 0
    assert [d.type for d in drafts][-1] is EventType.TURN_COMPLETED
    assert of(drafts, EventType.TURN_COMPLETED) == [{"turn_id": TURN, "stop_reason": "end_turn"}]


def test_tool_turn() -> None:
    _, events, _ = trace("tool")
    drafts = run(events)
    calls, results = of(drafts, EventType.TOOL_CALL), of(drafts, EventType.TOOL_RESULT)
    assert [(c["name"], c["input"]) for c in calls] == [("read", {"path": "hello.txt"})]
    assert results == [
        {
            "call_id": calls[0]["call_id"],
            "name": "read",
            "output": "hello from the corral fixture\n",
            "is_error": False,
        }
    ]
    types = [d.type for d in drafts]
    assert types.index(EventType.TOOL_CALL) < types.index(EventType.TOOL_RESULT)
    assert of(drafts, EventType.MESSAGE_COMPLETED)[-1]["content"][0]["text"].startswith(
        "Tool done:"
    )
    assert len(of(drafts, EventType.USAGE)) == 2  # one per model call


@pytest.mark.parametrize(
    ("name", "decision", "is_error"),
    [("approve-allow", "allow_once", False), ("approve-deny", "deny", True)],
)
def test_exec_approval(name: str, decision: str, is_error: bool) -> None:
    _, events, _ = trace(name)
    drafts = run(events)
    asked = of(drafts, EventType.APPROVAL_REQUESTED)
    assert len(asked) == 1
    assert asked[0]["name"] == "exec" and asked[0]["input"]["command"] == "echo hi"
    assert asked[0]["choices"] == ["allow_once", "deny"]  # allow-always was unavailable
    approval_id = asked[0]["native_approval_id"]
    resolved = [d for d in drafts if d.type is EventType.APPROVAL_RESOLVED]
    assert [d.native_id for d in resolved] == [approval_resolved_native_id(approval_id)]
    assert resolved[0].data["decision"] == decision
    results = of(drafts, EventType.TOOL_RESULT)
    assert [r["is_error"] for r in results] == [is_error]
    assert results[0]["call_id"] == asked[0]["call_id"]
    assert of(drafts, EventType.TURN_COMPLETED)[0]["stop_reason"] == "end_turn"


def test_upstream_error_is_reported_once() -> None:
    _, events, _ = trace("error")
    drafts = run(events)
    errors = of(drafts, EventType.ERROR)
    # The gateway retried the 400 eight times and sent two terminal error frames: one error.
    assert len(errors) == 1 and errors[0]["http_status"] == 400
    assert of(drafts, EventType.TURN_COMPLETED) == [{"turn_id": TURN, "stop_reason": "error"}]
    assert not of(drafts, EventType.MESSAGE_COMPLETED)  # the error notice row is not an answer


def test_abort_is_cancelled() -> None:
    _, events, _ = trace("abort")
    drafts = run(events)
    assert of(drafts, EventType.TURN_COMPLETED) == [{"turn_id": TURN, "stop_reason": "cancelled"}]
    assert not of(drafts, EventType.USAGE)  # the injected partial row carries no usage


@pytest.mark.parametrize(
    "name", ["text", "tool", "error", "abort", "approve-allow", "approve-deny"]
)
def test_history_reproduces_live_native_ids(name: str) -> None:
    """Backfill from chat.history yields the live ids for every transcript-borne draft."""
    key, events, messages = trace(name)
    live = {d.native_id for d in run(events) if d.type is not EventType.MESSAGE_DELTA}
    backfill = {d.native_id for d in run(history_events(key, messages))}
    # Everything history knows, the live path reported under the same id ...
    assert backfill - {f"turn-end:{TURN}"} <= live
    # ... and it knows every completed message, tool result and usage the live path saw.
    for draft_id in live:
        if draft_id.startswith(("msg:", "usage:", "tool:")):
            assert draft_id in backfill, draft_id


def test_history_turn_end_comes_from_the_transcript() -> None:
    """A pump that missed the end asks finish_turn(); the transcript says how it ended."""
    for name, reason in [("text", "end_turn"), ("error", "error"), ("abort", "cancelled")]:
        key, _, messages = trace(name)
        mapper = OpenClawMapper()
        mapper.begin_turn(TURN)
        for event in history_events(key, messages):
            mapper.map(event)
        assert [d.data["stop_reason"] for d in mapper.finish_turn()] == [reason], name
        assert mapper.finish_turn() == []  # once


def test_current_turn_waits_for_the_runs_user_row() -> None:
    _, _, messages = trace("tool")
    run_id = messages[0]["idempotencyKey"].split(":")[0]
    assert current_turn(messages, run_id) == messages
    assert current_turn(messages, "some-newer-run") == []


def test_other_sessions_and_odd_input_are_ignored() -> None:
    mapper = OpenClawMapper()
    mapper.begin_turn(TURN)
    odd: list[Any] = [
        NativeEvent("k", "chat", {}),
        NativeEvent("k", "chat", {"runId": 5, "state": "final"}),
        NativeEvent("k", "chat", {"runId": "r", "state": "delta", "deltaText": None}),
        NativeEvent("k", "agent", {"stream": "tool", "data": "nope"}),
        NativeEvent("k", "session.message", {"message": {"role": "assistant", "content": 7}}),
        NativeEvent("k", "session.message", {"message": None}),
        NativeEvent("k", "exec.approval.requested", {"id": None}),
        NativeEvent("k", "exec.approval.resolved", {"id": "a", "decision": "maybe"}),
        NativeEvent("k", "tick", {"ts": 1}),
        NativeEvent(
            "k", "chat", {"runId": "r", "state": "delta", "deltaText": "x", "replace": True}
        ),
    ]
    for event in odd:
        assert mapper.map(event) == []
    assert mapper.turn_id == TURN


def test_malformed_frames_are_counted_not_raised() -> None:
    before = malformed_frames["openclaw"]
    assert parse_frame("{not json") is None
    assert parse_frame(b"[1, 2]") is None
    assert parse_frame('{"type": "event"}') == {"type": "event"}
    assert malformed_frames["openclaw"] == before + 2
