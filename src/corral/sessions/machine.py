"""The session state machine, pure: a snapshot and an event in, the next snapshot out.

It never raises: an event that makes no sense in the current state leaves the state unchanged.
Commands (may a turn start? may it be cancelled?) are plain predicates the service asks first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from corral.domain.events import EventType, StopReason
from corral.domain.states import ACTIVE_STATES, READY_STATES, SessionState


@dataclass(frozen=True, slots=True)
class Snapshot:
    state: SessionState
    pending_approvals: int = 0
    stop_reason: str | None = None


def step(snapshot: Snapshot, event_type: EventType, data: dict[str, Any]) -> Snapshot:
    state = snapshot.state
    if event_type is EventType.TURN_STARTED:
        return Snapshot(SessionState.RUNNING, 0, None)
    if state in (SessionState.TERMINATED,):
        return snapshot
    if event_type is EventType.APPROVAL_REQUESTED and state in ACTIVE_STATES:
        nxt: SessionState = (
            state if state is SessionState.CANCELLING else SessionState.WAITING_APPROVAL
        )
        return replace(snapshot, state=nxt, pending_approvals=snapshot.pending_approvals + 1)
    if event_type is EventType.APPROVAL_RESOLVED:
        pending = max(snapshot.pending_approvals - 1, 0)
        nxt = (
            SessionState.RUNNING
            if state is SessionState.WAITING_APPROVAL and pending == 0
            else state
        )
        return replace(snapshot, state=nxt, pending_approvals=pending)
    if event_type is EventType.INPUT_REQUESTED and state in ACTIVE_STATES:
        return replace(snapshot, state=SessionState.WAITING_INPUT)
    if event_type is EventType.INPUT_RESOLVED and state is SessionState.WAITING_INPUT:
        return replace(snapshot, state=SessionState.RUNNING)
    if event_type is EventType.TURN_COMPLETED:
        reason = str(data.get("stop_reason") or StopReason.END_TURN.value)
        done: SessionState = (
            SessionState.FAILED if reason == StopReason.ERROR.value else SessionState.IDLE
        )
        return Snapshot(done, 0, reason)
    if event_type is EventType.ERROR and data.get("fatal"):
        return Snapshot(SessionState.TERMINATED, 0, StopReason.ERROR.value)
    return snapshot


def can_start_turn(state: SessionState) -> bool:
    return state in READY_STATES


def cancel_target(state: SessionState) -> SessionState | None:
    """The state a cancel request moves to, or None when there is nothing to cancel."""
    if state in ACTIVE_STATES and state is not SessionState.CANCELLING:
        return SessionState.CANCELLING
    return None


ACTIVE = ACTIVE_STATES
