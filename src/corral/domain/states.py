"""Session states (DESIGN.md, research/runtimes.md §8.2)."""

from __future__ import annotations

from enum import StrEnum


class SessionState(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    WAITING_INPUT = "waiting_input"
    CANCELLING = "cancelling"
    IDLE = "idle"
    FAILED = "failed"
    TERMINATED = "terminated"


#: States in which a turn is in flight on the runtime.
ACTIVE_STATES = frozenset(
    {
        SessionState.RUNNING,
        SessionState.WAITING_APPROVAL,
        SessionState.WAITING_INPUT,
        SessionState.CANCELLING,
    }
)

#: States from which a new user turn may start.
READY_STATES = frozenset({SessionState.CREATED, SessionState.IDLE, SessionState.FAILED})
