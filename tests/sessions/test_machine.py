"""The pure session state machine, table-driven."""

from __future__ import annotations

import pytest

from corral.domain.events import EventType
from corral.domain.states import SessionState as S
from corral.sessions.machine import Snapshot, can_start_turn, cancel_target, step

CASES = [
    (S.CREATED, EventType.TURN_STARTED, {}, S.RUNNING),
    (S.IDLE, EventType.TURN_STARTED, {}, S.RUNNING),
    (S.RUNNING, EventType.MESSAGE_DELTA, {}, S.RUNNING),
    (S.RUNNING, EventType.APPROVAL_REQUESTED, {}, S.WAITING_APPROVAL),
    (S.CANCELLING, EventType.APPROVAL_REQUESTED, {}, S.CANCELLING),
    (S.RUNNING, EventType.INPUT_REQUESTED, {}, S.WAITING_INPUT),
    (S.RUNNING, EventType.TURN_COMPLETED, {"stop_reason": "end_turn"}, S.IDLE),
    (S.CANCELLING, EventType.TURN_COMPLETED, {"stop_reason": "cancelled"}, S.IDLE),
    (S.RUNNING, EventType.TURN_COMPLETED, {"stop_reason": "error"}, S.FAILED),
    (S.RUNNING, EventType.ERROR, {"fatal": False}, S.RUNNING),
    (S.RUNNING, EventType.ERROR, {"fatal": True}, S.TERMINATED),
    (S.TERMINATED, EventType.TURN_COMPLETED, {"stop_reason": "end_turn"}, S.TERMINATED),
    (S.IDLE, EventType.APPROVAL_REQUESTED, {}, S.IDLE),
]


@pytest.mark.parametrize(("state", "event", "data", "expected"), CASES)
def test_step(state: S, event: EventType, data: dict[str, object], expected: S) -> None:
    assert step(Snapshot(state), event, data).state is expected


def test_waits_until_every_pending_approval_is_resolved() -> None:
    snap = Snapshot(S.RUNNING)
    snap = step(snap, EventType.APPROVAL_REQUESTED, {})
    snap = step(snap, EventType.APPROVAL_REQUESTED, {})
    snap = step(snap, EventType.APPROVAL_RESOLVED, {})
    assert snap.state is S.WAITING_APPROVAL and snap.pending_approvals == 1
    snap = step(snap, EventType.APPROVAL_RESOLVED, {})
    assert snap.state is S.RUNNING and snap.pending_approvals == 0


def test_turn_end_records_the_stop_reason() -> None:
    assert (
        step(
            Snapshot(S.RUNNING), EventType.TURN_COMPLETED, {"stop_reason": "cancelled"}
        ).stop_reason
        == "cancelled"
    )


@pytest.mark.parametrize("state", list(S))
def test_commands(state: S) -> None:
    assert can_start_turn(state) == (state in (S.CREATED, S.IDLE, S.FAILED))
    target = cancel_target(state)
    if state in (S.RUNNING, S.WAITING_APPROVAL, S.WAITING_INPUT):
        assert target is S.CANCELLING
    else:
        assert target is None
