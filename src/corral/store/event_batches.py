"""Many sessions' events in a fixed number of statements: the group-commit writer's store side.

:mod:`corral.sessions.batch` decides what to append (seqs, state transitions); this module
locks the sessions, finds which native ids are already stored, appends the events and advances
the sessions, whatever the batch size.

On PostgreSQL every list travels as one array parameter, so a statement's text is the same
whatever the batch size and the server prepares it once per connection. Appending is two
statements (one ``INSERT ... SELECT FROM unnest``, one ``UPDATE ... FROM unnest`` that also
notifies the other replicas), not a row by row ``executemany``. Only the lock goes through
SQLAlchemy (which begins the transaction with it); the rest run on the driver's connection,
in that transaction, skipping SQLAlchemy's per-statement work: for a small batch that work was
most of this process's cost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from corral.domain.events import Event
from corral.domain.states import SessionState
from corral.store import event_notices as notices
from corral.store import events as event_repo
from corral.store.event_notices import EVENTS_CHANNEL, MAX_PAYLOAD
from corral.store.tables import events, sessions
from corral.store.types import UTCDateTime


@dataclass(frozen=True, slots=True)
class Advance:
    """A session's row after a batch: its new last seq, state and stop reason."""

    session_id: str
    last_seq: int
    state: str
    stop_reason: str | None


@dataclass(frozen=True, slots=True)
class Locked:
    """A session row locked for a batch: just what appending to its log needs."""

    id: str
    last_seq: int
    state: SessionState
    stop_reason: str | None


_TEXTS = postgresql.ARRAY(sa.Text)
# Only the columns appending needs: building whole Session records (two dozen columns, three
# timestamps) for every session of every batch was a tenth of a busy replica's time.
_HEAD = (sessions.c.id, sessions.c.last_seq, sessions.c.state, sessions.c.stop_reason)

_LOCK_PG = (
    sa.select(*_HEAD)
    .where(sessions.c.id == sa.any_(sa.bindparam("ids", type_=_TEXTS)))
    .order_by(sessions.c.id)
    .with_for_update()
)
_KNOWN_PG = (
    "SELECT e.session_id, e.native_id FROM events AS e"
    " JOIN unnest($1::text[], $2::text[]) AS w(sid, nid)"
    " ON e.session_id = w.sid AND e.native_id = w.nid"
)
_APPEND_PG = (
    "INSERT INTO events"
    " (session_id, seq, type, ts, data, native_id, native_type, turn_id, trace_id)"
    " SELECT u.sid, u.seq, u.type, u.ts, u.data::jsonb, u.nid, u.ntype, u.turn, u.trace"
    " FROM unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[], $5::text[],"
    " $6::text[], $7::text[], $8::text[], $9::text[])"
    " AS u(sid, seq, type, ts, data, nid, ntype, turn, trace)"
)
# NOTIFY from the same statement: delivered to every replica's listener when (and only if)
# the transaction commits. The payload is a ``store.event_notices`` notice, events attached.
_ADVANCE_PG = (
    "UPDATE sessions SET last_seq = u.last_seq, state = u.state, stop_reason = u.stop_reason,"
    " last_activity_at = $5, updated_at = $5"
    " FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $8::text[])"
    " AS u(sid, last_seq, state, stop_reason, body)"
    " WHERE sessions.id = u.sid"
    " RETURNING pg_notify($6, u.sid || ' ' || u.last_seq || ' ' || $7 || u.body)"
)

# SQLite: the same work with portable statements (one writer at a time, no NOTIFY).
_INSERT = sa.insert(events)
_ADVANCE = (
    sa.update(sessions)
    .where(sessions.c.id == sa.bindparam("b_id"))
    .values(
        last_seq=sa.bindparam("b_last_seq"),
        state=sa.bindparam("b_state"),
        stop_reason=sa.bindparam("b_stop_reason"),
        last_activity_at=sa.bindparam("b_at", type_=UTCDateTime),
        updated_at=sa.bindparam("b_at", type_=UTCDateTime),
    )
)


def _notice_bodies(
    appended: list[Event], data_json: list[str], advances: list[Advance], origin: str
) -> list[str]:
    """Per advance, the events its notice carries (see :mod:`corral.store.event_notices`)."""
    grouped: dict[str, tuple[list[Event], list[str]]] = {}
    for event, data in zip(appended, data_json, strict=True):
        group = grouped.setdefault(event.session_id, ([], []))
        group[0].append(event)
        group[1].append(data)
    bodies = []
    for a in advances:
        batch, datas = grouped.get(a.session_id, ([], []))
        room = MAX_PAYLOAD - len(notices.header(a.session_id, a.last_seq, origin))
        bodies.append(notices.body(batch, datas, room) if batch else "")
    return bodies


async def _in_transaction(conn: AsyncConnection) -> asyncpg.Connection | None:
    """PostgreSQL: the driver's connection, inside the transaction SQLAlchemy began and sent
    with :func:`lock`. None on SQLite."""
    if conn.dialect.name != "postgresql":
        return None
    driver = (await conn.get_raw_connection()).driver_connection
    if not (isinstance(driver, asyncpg.Connection) and driver.is_in_transaction()):
        # Outside a transaction each statement would commit on its own: never write that way.
        raise RuntimeError("event batches are written after lock(), in its transaction")
    return driver


async def lock(conn: AsyncConnection, ids: list[str]) -> dict[str, Locked]:
    """Lock the sessions' rows, in id order (so writers never wait on each other in a cycle).

    Goes through SQLAlchemy, which begins the transaction the other statements join."""
    if conn.dialect.name == "postgresql":
        result = await conn.execute(_LOCK_PG, {"ids": ids})
    else:
        query = sa.select(*_HEAD).where(sessions.c.id.in_(ids)).order_by(sessions.c.id)
        result = await conn.execute(query)
    return {
        sid: Locked(sid, last_seq, SessionState(state), stop_reason)
        for sid, last_seq, state, stop_reason in result.all()
    }


async def known(conn: AsyncConnection, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which (session id, native id) pairs the log already holds."""
    if not pairs:
        return set()
    driver = await _in_transaction(conn)
    if driver is not None:
        found = await driver.fetch(_KNOWN_PG, [p[0] for p in pairs], [p[1] for p in pairs])
        return {(str(r[0]), str(r[1])) for r in found}
    query = sa.select(events.c.session_id, events.c.native_id).where(
        sa.tuple_(events.c.session_id, events.c.native_id).in_(pairs)
    )
    return {(str(r[0]), str(r[1])) for r in (await conn.execute(query)).all()}


async def append(
    conn: AsyncConnection, appended: list[Event], advances: list[Advance], at: datetime
) -> None:
    """Store ``appended`` (seqs following each locked row's ``last_seq``), move each session to
    its :class:`Advance` (last activity ``at``), and announce the new ends to other replicas."""
    if not appended:
        return
    driver = await _in_transaction(conn)
    if driver is not None:
        data_json = [json.dumps(e.data) for e in appended]
        origin = event_repo.origin_of(conn)
        await driver.execute(
            _APPEND_PG,
            [e.session_id for e in appended],
            [e.seq for e in appended],
            [e.type for e in appended],
            [e.ts for e in appended],
            data_json,
            [e.native_id for e in appended],
            [e.native_type for e in appended],
            [e.turn_id for e in appended],
            [e.trace_id for e in appended],
        )
        await driver.fetch(
            _ADVANCE_PG,
            [a.session_id for a in advances],
            [a.last_seq for a in advances],
            [a.state for a in advances],
            [a.stop_reason for a in advances],
            at,
            EVENTS_CHANNEL,
            origin,
            _notice_bodies(appended, data_json, advances, origin),
        )
        return
    await conn.execute(_INSERT, [event_repo.row_of(e) for e in appended])
    rows = [
        {
            "b_id": a.session_id,
            "b_last_seq": a.last_seq,
            "b_state": a.state,
            "b_stop_reason": a.stop_reason,
            "b_at": at,
        }
        for a in advances
    ]
    await conn.execute(_ADVANCE, rows)
