"""Repository for pending and resolved approvals (runtime permission prompts)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from corral.domain.records import Approval
from corral.store.tables import approvals, sessions
from corral.store.types import fields_of


async def insert_approval(conn: AsyncConnection, approval: Approval) -> None:
    await conn.execute(sa.insert(approvals).values(**fields_of(approval)))


async def get_approval(
    conn: AsyncConnection, session_id: str, approval_id: str, *, for_update: bool = False
) -> Approval | None:
    query = sa.select(approvals).where(
        approvals.c.session_id == session_id, approvals.c.id == approval_id
    )
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return Approval(**row._mapping) if row else None


async def get_by_native(conn: AsyncConnection, session_id: str, native_id: str) -> Approval | None:
    query = sa.select(approvals).where(
        approvals.c.session_id == session_id, approvals.c.native_id == native_id
    )
    row = (await conn.execute(query)).first()
    return Approval(**row._mapping) if row else None


#: Still waiting on the runtime: "resolving" means a human answered and Corral is telling it.
OPEN = ("pending", "resolving")


async def list_for_session(
    conn: AsyncConnection, session_id: str, *, statuses: tuple[str, ...] = ()
) -> list[Approval]:
    query = sa.select(approvals).where(approvals.c.session_id == session_id)
    if statuses:
        query = query.where(approvals.c.status.in_(statuses))
    rows = (await conn.execute(query.order_by(approvals.c.created_at))).all()
    return [Approval(**r._mapping) for r in rows]


async def resolve(
    conn: AsyncConnection,
    approval_id: str,
    *,
    status: str,
    decision: str,
    message: str | None,
    resolved_by: str | None,
    at: datetime,
) -> bool:
    """Resolve an open approval; False when it was already closed (someone else won)."""
    result = await conn.execute(
        sa.update(approvals)
        .where(approvals.c.id == approval_id, approvals.c.status.in_(OPEN))
        .values(
            status=status,
            decision=decision,
            message=message,
            resolved_by=resolved_by,
            resolved_at=at,
        )
    )
    return bool(result.rowcount)


async def claim(
    conn: AsyncConnection,
    approval_id: str,
    *,
    decision: str,
    message: str | None,
    resolved_by: str | None,
) -> bool:
    """Reserve a pending approval for one answer (a human's, or a policy's when ``resolved_by``
    is None) while the runtime is told."""
    result = await conn.execute(
        sa.update(approvals)
        .where(approvals.c.id == approval_id, approvals.c.status == "pending")
        .values(status="resolving", decision=decision, message=message, resolved_by=resolved_by)
    )
    return bool(result.rowcount)


async def release(conn: AsyncConnection, approval_id: str) -> None:
    """Undo a claim whose answer never reached the runtime."""
    await conn.execute(
        sa.update(approvals)
        .where(approvals.c.id == approval_id, approvals.c.status == "resolving")
        .values(status="pending", decision=None, message=None, resolved_by=None)
    )


async def annotate(conn: AsyncConnection, approval_id: str, **values: Any) -> None:
    """Record governance's part: decided_by, policy_id/version, approvers, expires_at."""
    await conn.execute(sa.update(approvals).where(approvals.c.id == approval_id).values(**values))


async def expired(conn: AsyncConnection, now: datetime, *, limit: int = 100) -> list[Approval]:
    """Pending approvals a rule gave an expiry to, now past it."""
    query = (
        sa.select(approvals)
        .where(approvals.c.status == "pending", approvals.c.expires_at < now)
        .order_by(approvals.c.expires_at)
        .limit(limit)
    )
    return [Approval(**r._mapping) for r in (await conn.execute(query)).all()]


async def inbox(
    conn: AsyncConnection,
    org_id: str,
    *,
    team_id: str | None,
    status: str | None,
    session_id: str | None,
    limit: int,
) -> list[Approval]:
    """Approvals across the org's sessions (one team's, when given), oldest first."""
    query = (
        sa.select(approvals)
        .join(sessions, sessions.c.id == approvals.c.session_id)
        .where(sessions.c.org_id == org_id)
    )
    if team_id is not None:
        query = query.where(sessions.c.team_id == team_id)
    if status is not None:
        query = query.where(approvals.c.status == status)
    if session_id is not None:
        query = query.where(approvals.c.session_id == session_id)
    rows = await conn.execute(query.order_by(approvals.c.created_at, approvals.c.id).limit(limit))
    return [Approval(**r._mapping) for r in rows]


async def get_by_id(conn: AsyncConnection, approval_id: str) -> Approval | None:
    row = (await conn.execute(sa.select(approvals).where(approvals.c.id == approval_id))).first()
    return Approval(**row._mapping) if row else None
