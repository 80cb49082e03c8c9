"""Repositories for runtimes and their (encrypted) credentials."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from corral.domain.records import CredentialInfo, Page, Runtime
from corral.store import pagination
from corral.store.errors import conflict_on_duplicate
from corral.store.tables import runtimes, secrets
from corral.store.types import fields_of


async def insert_runtime(conn: AsyncConnection, runtime: Runtime) -> None:
    async with conflict_on_duplicate(f"a runtime named {runtime.name!r} already exists"):
        await conn.execute(sa.insert(runtimes).values(**fields_of(runtime)))


async def update_runtime(conn: AsyncConnection, runtime_id: str, **values: Any) -> None:
    async with conflict_on_duplicate("a runtime with that name already exists"):
        await conn.execute(sa.update(runtimes).where(runtimes.c.id == runtime_id).values(**values))


async def get_runtime(conn: AsyncConnection, runtime_id: str) -> Runtime | None:
    row = (await conn.execute(sa.select(runtimes).where(runtimes.c.id == runtime_id))).first()
    return Runtime(**row._mapping) if row else None


async def get_runtime_by_name(conn: AsyncConnection, org_id: str, name: str) -> Runtime | None:
    query = sa.select(runtimes).where(runtimes.c.org_id == org_id, runtimes.c.name == name)
    row = (await conn.execute(query)).first()
    return Runtime(**row._mapping) if row else None


async def list_runtimes(
    conn: AsyncConnection,
    org_id: str,
    *,
    kind: str | None,
    name: str | None = None,
    cursor: str | None,
    limit: int,
) -> Page[Runtime]:
    query = sa.select(runtimes).where(runtimes.c.org_id == org_id)
    if kind is not None:
        query = query.where(runtimes.c.kind == kind)
    if name is not None:
        query = query.where(runtimes.c.name == name)
    rows = (await conn.execute(pagination.newest_first(query, runtimes, cursor, limit))).all()
    kept, nxt = pagination.split_page(list(rows), limit)
    return Page([Runtime(**r._mapping) for r in kept], nxt)


async def secret_id_for(
    conn: AsyncConnection, runtime_id: str, scope_type: str, scope_id: str
) -> str | None:
    query = sa.select(secrets.c.id).where(
        secrets.c.runtime_id == runtime_id,
        secrets.c.scope_type == scope_type,
        secrets.c.scope_id == scope_id,
    )
    return (await conn.execute(query)).scalar_one_or_none()


async def upsert_secret(conn: AsyncConnection, values: dict[str, Any], *, exists: bool) -> None:
    """Insert the secret row, or replace the sealed value of the existing row with that id."""
    if not exists:
        await conn.execute(sa.insert(secrets).values(**values))
        return
    update = {k: v for k, v in values.items() if k != "created_at"}
    await conn.execute(sa.update(secrets).where(secrets.c.id == values["id"]).values(**update))


async def delete_secret(
    conn: AsyncConnection, runtime_id: str, scope_type: str, scope_id: str
) -> bool:
    result = await conn.execute(
        sa.delete(secrets).where(
            secrets.c.runtime_id == runtime_id,
            secrets.c.scope_type == scope_type,
            secrets.c.scope_id == scope_id,
        )
    )
    return bool(result.rowcount)


async def credential_infos(conn: AsyncConnection, runtime_id: str) -> list[CredentialInfo]:
    return (await credential_infos_for(conn, [runtime_id])).get(runtime_id, [])


async def credential_infos_for(
    conn: AsyncConnection, runtime_ids: list[str]
) -> dict[str, list[CredentialInfo]]:
    """What is set for each runtime (scopes and times, never values), in one query."""
    if not runtime_ids:
        return {}
    query = (
        sa.select(
            secrets.c.runtime_id,
            secrets.c.scope_type,
            secrets.c.scope_id,
            secrets.c.created_at,
            secrets.c.updated_at,
        )
        .where(secrets.c.runtime_id.in_(runtime_ids))
        .order_by(secrets.c.scope_type, secrets.c.scope_id)
    )
    found: dict[str, list[CredentialInfo]] = {}
    for row in (await conn.execute(query)).all():
        values = dict(row._mapping)
        found.setdefault(values.pop("runtime_id"), []).append(CredentialInfo(**values))
    return found


async def secrets_for(
    conn: AsyncConnection, runtime_id: str, scopes: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Secret rows of ``runtime_id`` matching any of the (scope_type, scope_id) pairs."""
    if not scopes:
        return []
    match = sa.or_(
        *(sa.and_(secrets.c.scope_type == t, secrets.c.scope_id == i) for t, i in scopes)
    )
    query = sa.select(secrets).where(secrets.c.runtime_id == runtime_id, match)
    return [dict(r._mapping) for r in (await conn.execute(query)).all()]


async def all_secrets(conn: AsyncConnection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in (await conn.execute(sa.select(secrets))).all()]


async def rewrap_secret(
    conn: AsyncConnection, secret_id: str, wrapped_dek: bytes, kek_version: int
) -> None:
    await conn.execute(
        sa.update(secrets)
        .where(secrets.c.id == secret_id)
        .values(wrapped_dek=wrapped_dek, kek_version=kek_version)
    )
