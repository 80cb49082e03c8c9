"""Write normalized events into the log and move the session's state, in the caller's transaction.

Every event, whether a runtime produced it or Corral did, goes through :func:`record`: it dedupes
by native id, assigns ``seq``, applies the pure state machine, appends a ``session.state`` event on
every transition, and keeps the session row's counters (turns, tokens, cost) and the approvals
table in step with the log.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from corral.domain.errors import NotFound
from corral.domain.events import Event, EventDraft, EventType, StopReason
from corral.domain.ids import new_id
from corral.domain.records import Approval, Session
from corral.domain.states import SessionState
from corral.sessions import machine
from corral.store import approvals as approval_repo
from corral.store import events as event_repo
from corral.store import sessions as session_repo


class Head(Protocol):
    """What appending needs of a locked session row (a whole :class:`Session` will do)."""

    @property
    def id(self) -> str: ...
    @property
    def last_seq(self) -> int: ...
    @property
    def state(self) -> SessionState: ...
    @property
    def stop_reason(self) -> str | None: ...


class Log:
    """Events appended in this transaction: seqs follow the locked row's ``last_seq``."""

    def __init__(self, session: Head, turn_id: str | None, at: datetime) -> None:
        self.session = session
        self.last_seq = session.last_seq
        self.turn_id = turn_id
        self.at = at
        self.events: list[Event] = []

    def add(self, draft: EventDraft) -> Event:
        self.last_seq += 1
        event = Event(
            session_id=self.session.id,
            seq=self.last_seq,
            type=draft.type.value,
            ts=self.at,
            data=draft.data,
            native_id=draft.native_id,
            native_type=draft.native_type,
            turn_id=self.turn_id,
            trace_id=None,
        )
        self.events.append(event)
        return event

    def add_state(self, before: machine.Snapshot, after: machine.Snapshot) -> None:
        data: dict[str, object] = {"state": after.state.value, "previous": before.state.value}
        if after.stop_reason is not None:
            data["stop_reason"] = after.stop_reason
        self.add(EventDraft(EventType.SESSION_STATE, data))


_TURN_STATUS = {
    StopReason.END_TURN.value: "completed",
    StopReason.CANCELLED.value: "cancelled",
    StopReason.KILLED.value: "cancelled",
    **{
        r.value: "stopped"
        for r in (
            StopReason.TOOL_CALL_LIMIT,
            StopReason.COST_LIMIT,
            StopReason.TIME_LIMIT,
            StopReason.LOOP_DETECTED,
            StopReason.POLICY_DENIED,
        )
    },
}

_NEEDS_APPROVAL_COUNT = frozenset({EventType.APPROVAL_REQUESTED, EventType.APPROVAL_RESOLVED})


def _claimed_by(approval: Approval) -> dict[str, Any] | None:
    """Who answered an approval Corral claimed (status ``resolving``), as the event says it."""
    if approval.resolved_by is not None:
        return {"by": "client", "resolved_by": approval.resolved_by, "message": approval.message}
    if approval.status != "resolving":
        return None
    if approval.decided_by == "policy":
        return {
            "by": "policy",
            "resolved_by": None,
            "message": approval.message,
            "policy_id": approval.policy_id,
            "policy_version": approval.policy_version,
        }
    if approval.decided_by == "expiry":
        return {"by": "expiry", "resolved_by": None, "message": approval.message}
    return None


async def _locked(conn: AsyncConnection, session_id: str) -> Session:
    session = await session_repo.get_session(conn, session_id, for_update=True)
    if session is None:
        raise NotFound(f"session {session_id} not found")
    return session


async def record(
    conn: AsyncConnection,
    session_id: str,
    drafts: list[EventDraft],
    *,
    turn_id: str | None,
    at: datetime,
    locked: Session | None = None,
) -> list[Event]:
    """Record ``drafts`` for the session; ``locked``: its row, already locked by the caller in
    this transaction (and unchanged since, as far as seq and state go)."""
    session = locked if locked is not None and locked.id == session_id else None
    if session is None:
        session = await _locked(conn, session_id)
    pending = 0
    if any(d.type in _NEEDS_APPROVAL_COUNT for d in drafts):
        open_ = await approval_repo.list_for_session(conn, session_id, statuses=approval_repo.OPEN)
        pending = len(open_)
    snap = machine.Snapshot(session.state, pending, session.stop_reason)
    seen = await event_repo.known_native_ids(
        conn, session_id, (d.native_id for d in drafts if d.native_id is not None)
    )
    log = Log(session, turn_id, at)
    for draft in drafts:
        if draft.native_id is not None:
            if draft.native_id in seen:
                continue
            seen.add(draft.native_id)
        draft = await _link_approval(conn, session, draft, turn_id, at)
        event = log.add(draft)
        await _apply_effects(conn, session, event, at)
        nxt = machine.step(snap, draft.type, draft.data)
        if nxt.state is not snap.state:
            log.add_state(snap, nxt)
        snap = nxt
    await _finish(conn, log, snap)
    return log.events


async def transition(
    conn: AsyncConnection, session: Session, to: machine.Snapshot, turn_id: str | None, at: datetime
) -> Event:
    """A state change Corral decides on its own (a cancel request), recorded like any other."""
    locked = await _locked(conn, session.id)
    log = Log(locked, turn_id, at)
    log.add_state(machine.Snapshot(locked.state), to)
    await _finish(conn, log, to)
    return log.events[0]


async def _finish(conn: AsyncConnection, log: Log, snap: machine.Snapshot) -> None:
    changed = snap.state is not log.session.state or snap.stop_reason != log.session.stop_reason
    if log.events:
        values = {"state": snap.state.value, "stop_reason": snap.stop_reason} if changed else {}
        await event_repo.insert_batch(conn, log.events, log.at, **values)
    elif changed:
        await session_repo.update_session(
            conn, log.session.id, state=snap.state, stop_reason=snap.stop_reason
        )


async def _link_approval(
    conn: AsyncConnection, session: Session, draft: EventDraft, turn_id: str | None, at: datetime
) -> EventDraft:
    """Give runtime approval events a Corral approval id and keep the approvals table current."""
    native = draft.data.get("native_approval_id")
    if not isinstance(native, str):
        return draft
    existing = await approval_repo.get_by_native(conn, session.id, native)
    if draft.type is EventType.APPROVAL_REQUESTED:
        if existing is None:
            existing = Approval(
                id=new_id("approval"),
                session_id=session.id,
                turn_id=turn_id,
                native_id=native,
                call_id=draft.data.get("call_id"),
                name=draft.data.get("name"),
                input=draft.data.get("input"),
                choices=list(draft.data.get("choices") or []),
                status="pending",
                decision=None,
                message=None,
                resolved_by=None,
                created_at=at,
                resolved_at=None,
            )
            await approval_repo.insert_approval(conn, existing)
        return replace(draft, data={"approval_id": existing.id, **draft.data})
    if draft.type is EventType.APPROVAL_RESOLVED and existing is not None:
        claimed_by = _claimed_by(existing)
        if claimed_by is not None:
            # Corral answered (a human, a policy, or the expiry) and then told the runtime: its
            # echo of the answer may land before Corral's own record of it, so whichever report
            # lands first names who answered.
            draft = replace(draft, data={**draft.data, **claimed_by})
        await approval_repo.resolve(
            conn,
            existing.id,
            status="resolved",
            decision=str(draft.data.get("decision")),
            message=draft.data.get("message"),
            resolved_by=draft.data.get("resolved_by"),
            at=at,
        )
        return replace(draft, data={"approval_id": existing.id, **draft.data})
    return draft


async def _apply_effects(
    conn: AsyncConnection, session: Session, event: Event, at: datetime
) -> None:
    kind = event.type
    if kind == EventType.USAGE:
        await session_repo.add_usage(
            conn,
            session.id,
            input_tokens=int(event.data.get("input_tokens") or 0),
            output_tokens=int(event.data.get("output_tokens") or 0),
            cost_micros=int(event.data.get("cost_micros") or 0),
        )
    elif kind == EventType.TURN_COMPLETED:
        reason = str(event.data.get("stop_reason"))
        status = _TURN_STATUS.get(reason, "failed")
        if event.turn_id:
            await session_repo.finish_turn(
                conn, event.turn_id, status=status, stop_reason=reason, at=at
            )
        await session_repo.update_session(conn, session.id, current_turn_id=None)
        # A turn that ended while a prompt was open (a cancel, an error) leaves nothing to answer.
        for approval in await approval_repo.list_for_session(
            conn, session.id, statuses=approval_repo.OPEN
        ):
            await approval_repo.resolve(
                conn,
                approval.id,
                status="cancelled",
                decision="deny",
                message=None,
                resolved_by=None,
                at=at,
            )
    elif kind == EventType.ERROR:
        await session_repo.update_session(conn, session.id, error=event.data)
