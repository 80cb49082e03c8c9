"""Record many sessions' plain events with a handful of statements, whatever the batch size.

The group-commit writer hands over batches of writes from many pumps. Most are plain: token
deltas, messages, tool calls, state changes, nothing that touches approvals or counters. For those
the recorder's work is pure once the session rows are locked, so the batch is done in a fixed
number of statements: lock every session row (one ``SELECT ... FOR UPDATE`` in id order), find
which native ids are already stored (one query), append every event (one INSERT), advance every
session (one executemany UPDATE), and notify other replicas. Writes that need more (approvals,
usage counters, a turn's end, an error) go through :func:`recorder.record` one by one, in the same
transaction, after the plain ones; the session row is already locked by then.

The result is exactly what :func:`recorder.record` would have stored write by write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from corral.domain.events import Event, EventDraft, EventType
from corral.domain.records import Session
from corral.sessions import machine, recorder
from corral.store import events as event_repo
from corral.store import sessions as session_repo
from corral.store.tables import events, sessions

#: Event types whose recording reads or writes more than the log and the session's state.
_EFFECTFUL = frozenset(
    {
        EventType.APPROVAL_REQUESTED,
        EventType.APPROVAL_RESOLVED,
        EventType.USAGE,
        EventType.TURN_COMPLETED,
        EventType.ERROR,
    }
)


@dataclass(frozen=True, slots=True)
class Write:
    session_id: str
    drafts: list[EventDraft]
    turn_id: str | None


def is_plain(write: Write) -> bool:
    return not any(d.type in _EFFECTFUL or "native_approval_id" in d.data for d in write.drafts)


async def record_all(
    conn: AsyncConnection, writes: Sequence[Write], at: datetime
) -> list[list[Event]]:
    """Record every write (in order per session); returns the stored events of each."""
    ids = sorted({w.session_id for w in writes})
    locked = await _lock(conn, ids)
    plain_sessions = {sid for sid in ids if all(is_plain(w) for w in writes if w.session_id == sid)}
    results: dict[int, list[Event]] = {}
    plain = [(i, w) for i, w in enumerate(writes) if w.session_id in plain_sessions]
    if plain:
        seen = await _known(conn, [w for _, w in plain])
        logs: dict[str, recorder.Log] = {}
        snaps: dict[str, machine.Snapshot] = {}
        for index, write in plain:
            session = locked.get(write.session_id)
            if session is None:
                results[index] = []  # deleted meanwhile: nothing to append to
                continue
            log = logs.setdefault(session.id, recorder.Log(session, write.turn_id, at))
            log.turn_id = write.turn_id
            snap = snaps.get(session.id) or machine.Snapshot(session.state, 0, session.stop_reason)
            stored_from = len(log.events)
            for draft in write.drafts:
                if draft.native_id is not None:
                    key = (session.id, draft.native_id)
                    if key in seen:
                        continue
                    seen.add(key)
                log.add(draft)
                nxt = machine.step(snap, draft.type, draft.data)
                if nxt.state is not snap.state:
                    log.add_state(snap, nxt)
                snap = nxt
            snaps[session.id] = snap
            results[index] = log.events[stored_from:]
        await _store(conn, logs, snaps, at)
    for index, write in enumerate(writes):
        if index not in results:
            results[index] = await recorder.record(
                conn, write.session_id, write.drafts, turn_id=write.turn_id, at=at
            )
    return [results[i] for i in range(len(writes))]


# On PostgreSQL, lists travel as one array parameter: one statement text whatever the batch
# size, so it is compiled and prepared once (an expanding IN is rendered, and prepared by the
# server, again for every new length).
_LOCK_PG = (
    sa.select(sessions)
    .where(sessions.c.id == sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(sa.Text))))
    .order_by(sessions.c.id)
    .with_for_update()
)
_KNOWN_PG = sa.text(
    "SELECT e.session_id, e.native_id FROM events AS e"
    " JOIN unnest(CAST(:sids AS text[]), CAST(:nids AS text[])) AS w(sid, nid)"
    " ON e.session_id = w.sid AND e.native_id = w.nid"
)


async def _lock(conn: AsyncConnection, ids: list[str]) -> dict[str, Session]:
    # Rows are locked in id order in every transaction, so writers never wait in a cycle.
    if conn.dialect.name == "postgresql":
        result = await conn.execute(_LOCK_PG, {"ids": ids})
    else:
        query = sa.select(sessions).where(sessions.c.id.in_(ids)).order_by(sessions.c.id)
        result = await conn.execute(query)
    return {row.id: session_repo.session_of(row) for row in result.all()}


async def _known(conn: AsyncConnection, writes: list[Write]) -> set[tuple[str, str]]:
    pairs = sorted(
        {(w.session_id, d.native_id) for w in writes for d in w.drafts if d.native_id is not None}
    )
    if not pairs:
        return set()
    if conn.dialect.name == "postgresql":
        params = {"sids": [p[0] for p in pairs], "nids": [p[1] for p in pairs]}
        rows = (await conn.execute(_KNOWN_PG, params)).all()
    else:
        query = sa.select(events.c.session_id, events.c.native_id).where(
            sa.tuple_(events.c.session_id, events.c.native_id).in_(pairs)
        )
        rows = (await conn.execute(query)).all()
    return {(str(r[0]), str(r[1])) for r in rows}


async def _store(
    conn: AsyncConnection,
    logs: dict[str, recorder.Log],
    snaps: dict[str, machine.Snapshot],
    at: datetime,
) -> None:
    appended = [e for log in logs.values() for e in log.events]
    if not appended:
        return
    await conn.execute(sa.insert(events), [event_repo.row_of(e) for e in appended])
    updates = []
    for sid, log in logs.items():
        if not log.events:
            continue
        snap = snaps[sid]
        updates.append(
            {
                "b_id": sid,
                "last_seq": log.events[-1].seq,
                "state": snap.state.value,
                "stop_reason": snap.stop_reason,
            }
        )
    statement = (
        sa.update(sessions)
        .where(sessions.c.id == sa.bindparam("b_id"))
        .values(
            last_seq=sa.bindparam("last_seq"),
            state=sa.bindparam("state"),
            stop_reason=sa.bindparam("stop_reason"),
            last_activity_at=at,
            updated_at=at,
        )
    )
    await conn.execute(statement, updates)
    await event_repo.notify_many(conn, [log.events[-1] for log in logs.values() if log.events])
