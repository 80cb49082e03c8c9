"""The per-session event log: gap-free ``seq``, one row per native occurrence.

Writers hold the session row's lock for the whole transaction (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite has one writer at a time), so the next ``seq`` is simply ``last_seq + 1`` and
a batch is written with one multi-row INSERT and one UPDATE of ``last_seq``. A rolled-back
transaction writes neither, so the sequence has no gaps.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from corral.domain.events import Event
from corral.store.db import ORIGIN_OPTION
from corral.store.event_notices import EVENTS_CHANNEL, MAX_PAYLOAD, body, header
from corral.store.tables import events, sessions


async def known_native_ids(
    conn: AsyncConnection, session_id: str, native_ids: Iterable[str]
) -> set[str]:
    """Which of ``native_ids`` the session's log already holds."""
    wanted = list(set(native_ids))
    if not wanted:
        return set()
    # One id is the common case (a pump records each native event as it comes); "=" compiles
    # once and is cached, where an expanding IN is rendered again on every call.
    match = events.c.native_id == wanted[0] if len(wanted) == 1 else events.c.native_id.in_(wanted)
    query = sa.select(events.c.native_id).where(events.c.session_id == session_id, match)
    return {str(row.native_id) for row in (await conn.execute(query)).all()}


def row_of(event: Event) -> dict[str, Any]:
    return {
        "session_id": event.session_id,
        "seq": event.seq,
        "type": event.type,
        "ts": event.ts,
        "data": event.data,
        "native_id": event.native_id,
        "native_type": event.native_type,
        "turn_id": event.turn_id,
        "trace_id": event.trace_id,
    }


def origin_of(conn: AsyncConnection) -> str:
    """The writing instance's id, as notifications carry it ("-" when unknown)."""
    sync = conn.sync_connection
    return (sync.get_execution_options().get(ORIGIN_OPTION) if sync else None) or "-"


def notify_payload(conn: AsyncConnection, batch: list[Event]) -> str:
    """The notice of ``batch`` (see :mod:`corral.store.event_notices`), events included."""
    last = batch[-1]
    head = header(last.session_id, last.seq, origin_of(conn))
    return head + body(batch, [json.dumps(e.data) for e in batch], MAX_PAYLOAD - len(head))


async def insert_batch(
    conn: AsyncConnection, batch: list[Event], at: datetime, **session_values: Any
) -> None:
    """Store events whose seqs follow the session's ``last_seq``, and advance it (with any
    other ``session_values`` in the same statement: this runs once per recorded event)."""
    if not batch:
        return
    rows = [row_of(e) for e in batch]
    # One row is the common case (a pump records each native event as it comes): a plain
    # execute avoids the executemany path.
    await conn.execute(sa.insert(events), rows if len(rows) > 1 else rows[0])
    update = (
        sa.update(sessions)
        .where(sessions.c.id == batch[0].session_id)
        .values(last_seq=batch[-1].seq, last_activity_at=at, updated_at=at, **session_values)
    )
    if conn.dialect.name == "postgresql":
        # NOTIFY from the same statement: delivered to every replica's listener when (and
        # only if) this transaction commits.
        payload = notify_payload(conn, batch)
        update = update.returning(sa.func.pg_notify(EVENTS_CHANNEL, payload))
    await conn.execute(update)


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


async def of_type(
    conn: AsyncConnection, session_id: str, event_type: str, *, turn_id: str | None
) -> list[Event]:
    """The session's events of one type (in one turn, when given), oldest first."""
    query = sa.select(events).where(events.c.session_id == session_id, events.c.type == event_type)
    if turn_id is not None:
        query = query.where(events.c.turn_id == turn_id)
    return [_event(r) for r in (await conn.execute(query.order_by(events.c.seq))).all()]


async def count_of_type(conn: AsyncConnection, session_id: str, event_type: str) -> int:
    query = (
        sa.select(sa.func.count())
        .select_from(events)
        .where(events.c.session_id == session_id, events.c.type == event_type)
    )
    return int((await conn.execute(query)).scalar_one())
