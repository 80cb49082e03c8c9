"""Write normalized events into the log and move the session's state, in the caller's transaction.

Every event, whether a runtime produced it or Corral did, goes through :func:`record`: it dedupes
by native id, assigns ``seq``, applies the pure state machine, appends a ``session.state`` event on
every transition, and keeps the session row's counters (turns, tokens, cost) and the approvals
table in step with the log.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from corral.domain.errors import NotFound
from corral.domain.events import Event, EventDraft, EventType
from corral.domain.ids import new_id
from corral.domain.records import Approval, Session
from corral.sessions import machine
from corral.store import approvals as approval_repo
from corral.store import events as event_repo
from corral.store import sessions as session_repo


async def record(
    conn: AsyncConnection,
    session_id: str,
    drafts: list[EventDraft],
    *,
    turn_id: str | None,
    at: datetime,
) -> list[Event]:
    session = await session_repo.get_session(conn, session_id, for_update=True)
    if session is None:
        raise NotFound(f"session {session_id} not found")
    pending = await approval_repo.list_for_session(conn, session_id, statuses=approval_repo.OPEN)
    snap = machine.Snapshot(session.state, len(pending), session.stop_reason)
    stored: list[Event] = []
    for draft in drafts:
        draft = await _link_approval(conn, session, draft, turn_id, at)
        event = await event_repo.append(conn, session_id, draft, turn_id=turn_id, at=at)
        if event is None:
            continue
        stored.append(event)
        await _apply_effects(conn, session, event, at)
        nxt = machine.step(snap, draft.type, draft.data)
        if nxt.state is not snap.state:
            stored.append(await _transition(conn, session_id, snap, nxt, turn_id, at))
        snap = nxt
    return stored


async def transition(
    conn: AsyncConnection, session: Session, to: machine.Snapshot, turn_id: str | None, at: datetime
) -> Event:
    """A state change Corral decides on its own (a cancel request), recorded like any other."""
    return await _transition(conn, session.id, machine.Snapshot(session.state), to, turn_id, at)


async def _transition(
    conn: AsyncConnection,
    session_id: str,
    before: machine.Snapshot,
    after: machine.Snapshot,
    turn_id: str | None,
    at: datetime,
) -> Event:
    data: dict[str, object] = {"state": after.state.value, "previous": before.state.value}
    if after.stop_reason is not None:
        data["stop_reason"] = after.stop_reason
    event = await event_repo.append(
        conn, session_id, EventDraft(EventType.SESSION_STATE, data), turn_id=turn_id, at=at
    )
    assert event is not None  # Corral-originated events have no native id to collide on
    await session_repo.update_session(
        conn, session_id, state=after.state, stop_reason=after.stop_reason, updated_at=at
    )
    return event


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
        if existing.resolved_by is not None:
            # A human's answer claimed this approval; whichever report lands first says so.
            draft = replace(
                draft,
                data={
                    **draft.data,
                    "by": "client",
                    "resolved_by": existing.resolved_by,
                    "message": existing.message,
                },
            )
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
        status = {"end_turn": "completed", "cancelled": "cancelled"}.get(reason, "failed")
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
