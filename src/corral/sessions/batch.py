"""Record many sessions' plain events with a handful of statements, whatever the batch size.

The group-commit writer hands over batches of writes from many pumps. Most are plain: token
deltas, messages, tool calls, state changes, nothing that touches approvals or counters. For those
the recorder's work is pure once the session rows are locked, so the batch is done in a fixed
number of statements (:mod:`corral.store.event_batches`): lock every session row in id order,
find which native ids are already stored, append every event, advance every session and notify
other replicas. Writes that need more (approvals,
usage counters, a turn's end, an error) go through :func:`recorder.record` one by one, in the same
transaction, after the plain ones; the session row is already locked by then.

The result is exactly what :func:`recorder.record` would have stored write by write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from corral.domain.events import Event, EventDraft, EventType
from corral.sessions import machine, recorder
from corral.store import event_batches

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
    locked = await event_batches.lock(conn, ids)
    # A session with any effectful write goes write by write (its writes keep their order).
    plain_sessions = set(ids).difference(w.session_id for w in writes if not is_plain(w))
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


async def _known(conn: AsyncConnection, writes: list[Write]) -> set[tuple[str, str]]:
    pairs = sorted(
        {(w.session_id, d.native_id) for w in writes for d in w.drafts if d.native_id is not None}
    )
    return await event_batches.known(conn, pairs)


async def _store(
    conn: AsyncConnection,
    logs: dict[str, recorder.Log],
    snaps: dict[str, machine.Snapshot],
    at: datetime,
) -> None:
    appended = [e for log in logs.values() for e in log.events]
    advances = [
        event_batches.Advance(
            sid, log.events[-1].seq, snaps[sid].state.value, snaps[sid].stop_reason
        )
        for sid, log in logs.items()
        if log.events
    ]
    await event_batches.append(conn, appended, advances, at)
