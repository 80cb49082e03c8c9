"""Run leases: which Corral instance pumps each running turn, and until when.

A lease is claimed with one conditional UPDATE, so of several instances racing for an expired
lease exactly one wins; renewals only touch leases the caller still holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from corral.store.tables import inputs, turns


@dataclass(frozen=True, slots=True)
class RunningTurn:
    turn_id: str
    session_id: str
    input_id: str | None
    owner: str | None


def _claimable(owner: str, now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        turns.c.status == "running",
        sa.or_(
            turns.c.owner.is_(None),
            turns.c.owner == owner,
            turns.c.lease_expires_at < now,
        ),
    )


async def claimable(
    conn: AsyncConnection, owner: str, now: datetime, limit: int
) -> list[RunningTurn]:
    """Running turns nobody holds: never leased, leased by ``owner`` before, or expired."""
    query = (
        sa.select(turns.c.id, turns.c.session_id, turns.c.input_id, turns.c.owner)
        .where(_claimable(owner, now))
        .order_by(turns.c.started_at)
        .limit(limit)
    )
    return [
        RunningTurn(r.id, r.session_id, r.input_id, r.owner)
        for r in (await conn.execute(query)).all()
    ]


async def recently_ended(
    conn: AsyncConnection, owner: str, since: datetime, limit: int
) -> list[RunningTurn]:
    """Turns ``owner`` pumped that ended after ``since``: the runtime may still have been
    reporting on them (trailing text, usage) when that owner stopped."""
    query = (
        sa.select(turns.c.id, turns.c.session_id, turns.c.input_id, turns.c.owner)
        .where(turns.c.owner == owner, turns.c.status != "running", turns.c.completed_at > since)
        .order_by(turns.c.completed_at.desc())
        .limit(limit)
    )
    return [
        RunningTurn(r.id, r.session_id, r.input_id, r.owner)
        for r in (await conn.execute(query)).all()
    ]


async def claim(
    conn: AsyncConnection, turn_id: str, owner: str, now: datetime, until: datetime
) -> bool:
    result = await conn.execute(
        sa.update(turns)
        .where(turns.c.id == turn_id, _claimable(owner, now))
        .values(owner=owner, lease_expires_at=until)
    )
    return bool(result.rowcount)


async def renew(
    conn: AsyncConnection, owner: str, turn_ids: list[str], until: datetime
) -> set[str]:
    """Extend the caller's leases; returns the turns another instance has taken over.

    A turn whose row is not visible yet (its start is still being committed) or that has ended
    is not reported as lost.
    """
    if not turn_ids:
        return set()
    # Rows another transaction holds (a turn being finished, in a batch that locks turns in its
    # own order) are skipped, not waited for: waiting could deadlock, and the next renewal, well
    # within the lease, extends them.
    mine = (
        sa.select(turns.c.id)
        .where(turns.c.owner == owner, turns.c.status == "running", turns.c.id.in_(turn_ids))
        .with_for_update(skip_locked=True)
    )
    await conn.execute(
        sa.update(turns)
        .where(turns.c.id.in_(mine.scalar_subquery()))
        .values(lease_expires_at=until)
    )
    taken = await conn.execute(
        sa.select(turns.c.id).where(
            turns.c.id.in_(turn_ids),
            turns.c.status == "running",
            sa.or_(turns.c.owner.is_(None), turns.c.owner != owner),
        )
    )
    return {str(r.id) for r in taken.all()}


async def release_all(conn: AsyncConnection, owner: str) -> None:
    """On a clean shutdown: let another instance take over at once instead of after expiry."""
    await conn.execute(
        sa.update(turns)
        .where(turns.c.owner == owner, turns.c.status == "running")
        .values(owner=None, lease_expires_at=None)
    )


async def input_of(conn: AsyncConnection, input_id: str) -> tuple[str, str, str] | None:
    """(session_id, text, status) of an outbox entry."""
    row = (
        await conn.execute(
            sa.select(inputs.c.session_id, inputs.c.text, inputs.c.status).where(
                inputs.c.id == input_id
            )
        )
    ).first()
    return (row.session_id, row.text, row.status) if row else None


async def delivered_texts(conn: AsyncConnection, session_id: str) -> list[str]:
    """Texts of the session's inputs known to have reached the runtime, oldest first."""
    query = (
        sa.select(inputs.c.text)
        .where(inputs.c.session_id == session_id, inputs.c.status == "delivered")
        .order_by(inputs.c.created_at)
    )
    return [str(r.text) for r in (await conn.execute(query)).all()]
