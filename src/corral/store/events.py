"""The per-session event log: gap-free ``seq``, one row per native occurrence."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from corral.domain.events import Event, EventDraft
from corral.store.tables import events, sessions


async def append(
    conn: AsyncConnection,
    session_id: str,
    draft: EventDraft,
    *,
    turn_id: str | None,
    at: datetime,
    trace_id: str | None = None,
) -> Event | None:
    """Append one event, or return ``None`` when its native id is already stored.

    The ``seq`` comes from an UPDATE ... RETURNING on the session row, which also locks that row
    until commit; concurrent writers of one session therefore queue, and a rolled-back append
    gives its number back, so the sequence has no gaps.
    """
    if draft.native_id is not None:
        seen = await conn.execute(
            sa.select(events.c.seq).where(
                events.c.session_id == session_id, events.c.native_id == draft.native_id
            )
        )
        if seen.first() is not None:
            return None
    result = await conn.execute(
        sa.update(sessions)
        .where(sessions.c.id == session_id)
        .values(last_seq=sessions.c.last_seq + 1, last_activity_at=at, updated_at=at)
        .returning(sessions.c.last_seq)
    )
    seq = int(result.scalar_one())
    event = Event(
        session_id=session_id,
        seq=seq,
        type=draft.type.value,
        ts=at,
        data=draft.data,
        native_id=draft.native_id,
        native_type=draft.native_type,
        turn_id=turn_id,
        trace_id=trace_id,
    )
    await conn.execute(
        sa.insert(events).values(
            session_id=session_id,
            seq=seq,
            type=event.type,
            ts=at,
            data=draft.data,
            native_id=draft.native_id,
            native_type=draft.native_type,
            turn_id=turn_id,
            trace_id=trace_id,
        )
    )
    return event


def _event(row: Any) -> Event:
    return Event(**row._mapping)


async def after(conn: AsyncConnection, session_id: str, seq: int, limit: int) -> list[Event]:
    query = (
        sa.select(events)
        .where(events.c.session_id == session_id, events.c.seq > seq)
        .order_by(events.c.seq)
        .limit(limit)
    )
    return [_event(r) for r in (await conn.execute(query)).all()]


async def has_native(conn: AsyncConnection, session_id: str, native_id: str) -> bool:
    query = sa.select(events.c.seq).where(
        events.c.session_id == session_id, events.c.native_id == native_id
    )
    return (await conn.execute(query)).first() is not None
