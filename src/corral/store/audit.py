"""Repository of the audit trail: the chain head, records, checkpoints and signing keys.

Rows go in and come out as plain dicts in the column form; ``corral.audit.record`` turns them
into records (the hashed form) and back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from corral.domain.errors import InvalidRequest
from corral.domain.records import Page
from corral.store import pagination
from corral.store.tables import audit_checkpoints, audit_head, audit_keys, audit_records
from corral.store.types import UTCDateTime


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    hash: str
    checkpoint_seq: int
    checkpoint_at: datetime | None


@dataclass(frozen=True, slots=True)
class RecordFilter:
    key_id: str | None = None
    user_id: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    action: str | None = None
    decision: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


# -- the head ---------------------------------------------------------------------------------


async def lock_head(conn: AsyncConnection) -> Head:
    """The head, locked to the end of the transaction: appends from every replica queue here."""
    query = sa.select(audit_head).where(audit_head.c.id == 1).with_for_update()
    row = (await conn.execute(query)).one()
    return Head(row.seq, row.hash, row.checkpoint_seq, row.checkpoint_at)


async def read_head(conn: AsyncConnection) -> Head:
    row = (await conn.execute(sa.select(audit_head).where(audit_head.c.id == 1))).one()
    return Head(row.seq, row.hash, row.checkpoint_seq, row.checkpoint_at)


_ADVANCE = (
    sa.update(audit_head)
    .where(
        audit_head.c.id == 1,
        audit_head.c.seq == sa.bindparam("from_seq"),
        audit_head.c.hash == sa.bindparam("from_hash"),
    )
    .values(seq=sa.bindparam("to_seq"), hash=sa.bindparam("to_hash"))
)


async def advance_head(conn: AsyncConnection, start: Head, to_seq: int, to_hash: str) -> bool:
    """Move the head on from ``start`` (locking it); False if the head is elsewhere by now."""
    params = {"from_seq": start.seq, "from_hash": start.hash, "to_seq": to_seq, "to_hash": to_hash}
    result = await conn.execute(_ADVANCE, params)
    return bool(result.rowcount == 1)


async def mark_checkpoint(conn: AsyncConnection, seq: int, at: datetime) -> None:
    await conn.execute(
        sa.update(audit_head)
        .where(audit_head.c.id == 1)
        .values(checkpoint_seq=seq, checkpoint_at=at)
    )


# -- records and checkpoints ------------------------------------------------------------------


_INSERT = sa.insert(audit_records)


async def insert_records(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    await conn.execute(_INSERT, rows[0] if len(rows) == 1 else rows)


async def insert_checkpoint(conn: AsyncConnection, row: dict[str, Any]) -> None:
    await conn.execute(sa.insert(audit_checkpoints).values(**row))


async def records_after(conn: AsyncConnection, after_seq: int, limit: int) -> list[dict[str, Any]]:
    """Records with ``seq > after_seq``, oldest first (for verifying and exporting)."""
    query = (
        sa.select(audit_records)
        .where(audit_records.c.seq > after_seq)
        .order_by(audit_records.c.seq)
        .limit(limit)
    )
    return [dict(row._mapping) for row in (await conn.execute(query)).all()]


async def checkpoints(conn: AsyncConnection, after_seq: int = 0) -> list[dict[str, Any]]:
    query = (
        sa.select(audit_checkpoints)
        .where(audit_checkpoints.c.seq > after_seq)
        .order_by(audit_checkpoints.c.seq)
    )
    return [dict(row._mapping) for row in (await conn.execute(query)).all()]


def _filtered(query: sa.Select[Any], f: RecordFilter) -> sa.Select[Any]:
    c = audit_records.c
    for column, value in (
        (c.key_id, f.key_id), (c.user_id, f.user_id), (c.resource_type, f.resource_type),
        (c.resource_id, f.resource_id), (c.action, f.action), (c.decision, f.decision),
        (c.outcome, f.outcome),
    ):  # fmt: skip
        if value is not None:
            query = query.where(column == value)
    if f.since is not None:
        query = query.where(c.ts >= sa.literal(f.since, UTCDateTime))
    if f.until is not None:
        query = query.where(c.ts < sa.literal(f.until, UTCDateTime))
    return query


async def list_records(
    conn: AsyncConnection,
    org_id: str,
    f: RecordFilter,
    *,
    visible_to: tuple[str, str] | None,
    cursor: str | None,
    limit: int,
) -> Page[dict[str, Any]]:
    """Newest first. ``visible_to`` (team id, user id): only that team's records or that user's."""
    c = audit_records.c
    query = _filtered(sa.select(audit_records).where(c.org_id == org_id), f)
    if visible_to is not None:
        team_id, user_id = visible_to
        query = query.where(sa.or_(c.team_id == team_id, c.user_id == user_id))
    if cursor:
        _, seq = pagination.decode_cursor(cursor)
        if not seq.isdigit():
            raise InvalidRequest("cursor is not one this API issued", code="invalid_cursor")
        query = query.where(c.seq < int(seq))
    rows = (await conn.execute(query.order_by(c.seq.desc()).limit(limit + 1))).all()
    kept = [dict(row._mapping) for row in rows[:limit]]
    more = len(rows) > limit
    last = kept[-1] if kept else None
    return Page(
        kept, pagination.encode_cursor(last["ts"], str(last["seq"])) if more and last else None
    )


# -- signing keys -----------------------------------------------------------------------------


async def signing_keys(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Every checkpoint key, oldest first (the newest signs)."""
    query = sa.select(audit_keys).order_by(audit_keys.c.created_at, audit_keys.c.id)
    return [dict(row._mapping) for row in (await conn.execute(query)).all()]


async def insert_signing_key(conn: AsyncConnection, row: dict[str, Any]) -> None:
    await conn.execute(sa.insert(audit_keys).values(**row))


async def rewrap_signing_key(
    conn: AsyncConnection, key_id: str, wrapped_dek: bytes, kek_version: int
) -> None:
    await conn.execute(
        sa.update(audit_keys)
        .where(audit_keys.c.id == key_id)
        .values(wrapped_dek=wrapped_dek, kek_version=kek_version)
    )
