"""The crash test's checker catches what it claims to: a consistent record passes, each defect fails."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from tests.crash.invariants import ClientInput, Observed, check

Json = dict[str, Any]


def _event(seq: int, kind: str, turn: str | None, **data: Any) -> Json:
    ts = f"2027-01-15T08:00:{seq:02d}.000000Z"
    return {
        "session_id": "ses_1",
        "seq": seq,
        "type": kind,
        "ts": ts,
        "data": data,
        "turn_id": turn,
    }


def _user(mid: str, text: str) -> Json:
    return {
        "info": {"id": mid, "role": "user", "time": {"created": 1}},
        "parts": [{"id": f"{mid}-p", "type": "text", "text": text, "messageID": mid}],
    }


def _assistant(mid: str, parent: str, parts: list[Json], tokens: tuple[int, int]) -> Json:
    info = {
        "id": mid,
        "role": "assistant",
        "parentID": parent,
        "time": {"created": 1, "completed": 2},
        "tokens": {"input": tokens[0], "output": tokens[1]},
    }
    return {"info": info, "parts": [{**p, "messageID": mid} for p in parts]}


def good() -> Observed:
    """Two turns: a streamed echo, then a tool call and its answer; every event once."""
    history = [
        _user("u1", "hello"),
        _assistant(
            "m1",
            "u1",
            [{"id": "p1", "type": "text", "text": "Echo: hello", "time": {"end": 2}}],
            (5, 2),
        ),
        _user("u2", "run"),
        _assistant(
            "m2",
            "u2",
            [
                {
                    "id": "p2",
                    "type": "tool",
                    "callID": "c1",
                    "tool": "bash",
                    "state": {"status": "completed", "input": {}, "output": "hi\n"},
                }
            ],
            (7, 1),
        ),
        _assistant(
            "m3",
            "u2",
            [{"id": "p3", "type": "text", "text": "Tool done: hi", "time": {"end": 2}}],
            (9, 3),
        ),
    ]
    rows: list[tuple[str, str | None, dict[str, Any]]] = [
        ("session.created", None, {"native_session_id": "oc_1"}),
        ("turn.started", "t1", {"turn_id": "t1", "text": "hello"}),
        ("session.state", "t1", {"state": "running", "previous": "created"}),
        ("message.delta", "t1", {"part_id": "p1", "message_id": "m1", "text": "Echo: "}),
        ("message.delta", "t1", {"part_id": "p1", "message_id": "m1", "text": "hello"}),
        ("message.completed", "t1", {"part_id": "p1", "message_id": "m1", "content": [{"type": "text", "text": "Echo: hello"}]}),
        ("usage", "t1", {"message_id": "m1", "input_tokens": 5, "output_tokens": 2}),
        ("turn.completed", "t1", {"turn_id": "t1", "stop_reason": "end_turn"}),
        ("session.state", "t1", {"state": "idle", "previous": "running", "stop_reason": "end_turn"}),
        ("turn.started", "t2", {"turn_id": "t2", "text": "run"}),
        ("session.state", "t2", {"state": "running", "previous": "idle"}),
        ("tool.call", "t2", {"call_id": "c1", "status": "running"}),
        ("tool.result", "t2", {"call_id": "c1", "output": "hi\n", "is_error": False}),
        ("usage", "t2", {"message_id": "m2", "input_tokens": 7, "output_tokens": 1}),
        ("message.completed", "t2", {"part_id": "p3", "message_id": "m3", "content": [{"type": "text", "text": "Tool done: hi"}]}),
        ("usage", "t2", {"message_id": "m3", "input_tokens": 9, "output_tokens": 3}),
        ("turn.completed", "t2", {"turn_id": "t2", "stop_reason": "end_turn"}),
        ("session.state", "t2", {"state": "idle", "previous": "running", "stop_reason": "end_turn"}),
    ]  # fmt: skip
    events = [_event(i + 1, kind, turn, **data) for i, (kind, turn, data) in enumerate(rows)]
    session = {
        "id": "ses_1",
        "state": "idle",
        "stop_reason": "end_turn",
        "turns": 2,
        "current_turn_id": None,
        "last_seq": len(events),
        "input_tokens": 21,
        "output_tokens": 6,
    }
    inputs = [ClientInput("hello", "k1", 202, "t1"), ClientInput("run", "k2", 202, "t2")]
    return Observed(
        session=session,
        events=events,
        history=history,
        inputs=inputs,
        seen_before_kill={e["seq"]: copy.deepcopy(e) for e in events[:5]},
        resumed=copy.deepcopy(events[5:]),
        resumed_from=5,
    )


def invariants(obs: Observed) -> set[str]:
    return {f.invariant for f in check(obs)}


def _append(obs: Observed, event: Json) -> None:
    event = {**copy.deepcopy(event), "seq": len(obs.events) + 1}
    obs.events.append(event)
    obs.session["last_seq"] = len(obs.events)
    assert obs.resumed is not None
    obs.resumed.append(event)


def test_a_consistent_record_passes() -> None:
    assert check(good()) == []


def test_a_repeated_event_is_a_duplicate() -> None:
    obs = good()
    _append(obs, obs.events[5])  # message.completed p1 again
    assert invariants(obs) == {"dup.message.completed"}
    obs = good()
    _append(obs, obs.events[12])  # tool.result c1 again
    assert "dup.tool.result" in invariants(obs)


def test_a_missing_seq_is_a_gap_and_a_broken_resume() -> None:
    obs = good()
    del obs.events[9]
    assert {"seq.gap_free", "seq.last_seq"} <= invariants(obs)


def test_inputs_match_the_runtime_user_messages() -> None:
    obs = good()
    obs.history.append(_user("u3", "run"))  # delivered a second time
    assert "input.delivered_twice" in invariants(obs)
    obs = good()
    obs.history = obs.history[:2]  # the second input never arrived
    found = invariants(obs)
    assert {"input.lost", "text.phantom", "usage.phantom"} <= found
    obs = good()
    obs.inputs.append(ClientInput("later", "k3", 202, "t9"))
    assert invariants(obs) == {"input.acked_unlogged"}


def test_a_repeated_text_counts_per_delivery() -> None:
    obs = good()
    for event in obs.events:
        if event["type"] == "turn.started" and event["data"]["text"] == "run":
            event["data"]["text"] = "hello"
    obs.history[2]["parts"][0]["text"] = "hello"
    obs.inputs[1].text = "hello"
    obs.resumed = copy.deepcopy(obs.events[5:])
    assert check(obs) == []
    del obs.history[2:]
    assert "input.lost" in invariants(obs)


def test_text_tools_and_usage_match_the_runtime() -> None:
    obs = good()
    obs.history[1]["parts"][0]["text"] = "Echo: hullo"
    assert "text.differs" in invariants(obs)
    obs = good()
    obs.history[3]["parts"][0]["state"]["output"] = "bye\n"
    assert invariants(obs) == {"tool.result_differs"}
    obs = good()
    obs.history[3]["info"]["tokens"]["input"] = 8
    assert {"usage.differs", "usage.runtime_totals"} <= invariants(obs)


def test_state_follows_the_last_turn() -> None:
    obs = good()
    obs.session["state"] = "failed"
    assert {"state.final", "state.log_vs_row"} <= invariants(obs)
    obs = good()
    obs.session["turns"] = 3
    assert invariants(obs) == {"state.turns"}
    obs = good()
    obs.history[4]["info"]["error"] = {"name": "MessageAbortedError"}
    assert invariants(obs) == {"turn.stop_reason"}


def test_deltas_must_fit_the_text_and_not_skip_while_up() -> None:
    obs = good()
    obs.events[4]["data"]["text"] = "Echo: "  # the first delta again, not the next one
    assert "delta.order" in invariants(obs)
    obs = good()
    obs.history[1]["parts"][0]["text"] = "Echo: and hello"  # " and " never arrived
    obs.events[5]["data"]["content"][0]["text"] = "Echo: and hello"
    obs.resumed = copy.deepcopy(obs.events[5:])
    assert invariants(obs) == {"delta.gap"}
    obs.kill_times = [_ts_of(obs.events[3]) + 0.5]  # ...unless Corral was down then
    assert invariants(obs) == set()


def test_sse_clients_see_what_the_log_keeps() -> None:
    obs = good()
    assert obs.resumed is not None
    del obs.resumed[2]
    assert invariants(obs) == {"sse.resume"}
    obs = good()
    obs.seen_before_kill[4]["data"]["text"] = "other"
    assert invariants(obs) == {"sse.seen_then_changed"}


def _ts_of(event: Json) -> float:
    return datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()
