"""Remembered ``Idempotency-Key`` uses: (key owner, scope, key) -> request hash and result id."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from corral.store.tables import idempotency_keys


async def lookup(
    conn: AsyncConnection, key_id: str, scope: str, idempotency_key: str
) -> tuple[str, str] | None:
    """Return (request_hash, resource_id) if this key was used before."""
    row = (
        await conn.execute(
            sa.select(idempotency_keys.c.request_hash, idempotency_keys.c.resource_id).where(
                idempotency_keys.c.key_id == key_id,
                idempotency_keys.c.scope == scope,
                idempotency_keys.c.idempotency_key == idempotency_key,
            )
        )
    ).first()
    return (row.request_hash, row.resource_id) if row else None


async def remember(
    conn: AsyncConnection,
    *,
    key_id: str,
    scope: str,
    idempotency_key: str,
    request_hash: str,
    resource_id: str,
    at: datetime,
) -> None:
    await conn.execute(
        sa.insert(idempotency_keys).values(
            key_id=key_id,
            scope=scope,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            resource_id=resource_id,
            created_at=at,
        )
    )
