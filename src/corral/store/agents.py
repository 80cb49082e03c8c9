"""Repositories for agents and their immutable versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from corral.domain.records import Agent, Page
from corral.store import pagination
from corral.store.errors import conflict_on_duplicate
from corral.store.tables import agent_versions, agents

# The versioned fields come from agent_versions, so reading an old version shows it as it was.
_COLUMNS = (
    *(c for c in agents.c if c.name not in ("name", "version", "runtime_id")),
    agent_versions.c.name,
    agent_versions.c.version,
    agent_versions.c.runtime_id,
    agent_versions.c.model,
    agent_versions.c.instructions,
    agent_versions.c.tools,
    agent_versions.c.metadata,
)


def _joined(version_column: sa.ColumnElement[int]) -> sa.Select[Any]:
    join = agents.join(
        agent_versions,
        sa.and_(
            agent_versions.c.agent_id == agents.c.id, agent_versions.c.version == version_column
        ),
    )
    return sa.select(*_COLUMNS).select_from(join)


async def insert_agent(conn: AsyncConnection, row: dict[str, Any], version: dict[str, Any]) -> None:
    async with conflict_on_duplicate(f"an agent named {row['name']!r} already exists in this team"):
        await conn.execute(sa.insert(agents).values(**row))
    await conn.execute(sa.insert(agent_versions).values(**version))


async def add_version(
    conn: AsyncConnection, agent_id: str, version: dict[str, Any], *, name: str, at: datetime
) -> None:
    async with conflict_on_duplicate(f"an agent named {name!r} already exists in this team"):
        await conn.execute(
            sa.update(agents)
            .where(agents.c.id == agent_id)
            .values(version=version["version"], name=name, updated_at=at)
        )
    await conn.execute(sa.insert(agent_versions).values(**version))


async def get_agent(
    conn: AsyncConnection, agent_id: str, *, version: int | None = None, for_update: bool = False
) -> Agent | None:
    column = sa.literal(version) if version is not None else agents.c.version
    query = _joined(column).where(agents.c.id == agent_id, agents.c.deleted_at.is_(None))
    if for_update:
        query = query.with_for_update(of=agents)
    row = (await conn.execute(query)).first()
    return Agent(**row._mapping) if row else None


async def list_agents(
    conn: AsyncConnection,
    org_id: str,
    *,
    team_id: str | None,
    runtime_id: str | None,
    name: str | None,
    cursor: str | None,
    limit: int,
) -> Page[Agent]:
    query = _joined(agents.c.version).where(
        agents.c.org_id == org_id, agents.c.deleted_at.is_(None)
    )
    if team_id is not None:
        query = query.where(agents.c.team_id == team_id)
    if runtime_id is not None:
        query = query.where(agents.c.runtime_id == runtime_id)
    if name is not None:
        query = query.where(agents.c.name == name)
    rows = (await conn.execute(pagination.newest_first(query, agents, cursor, limit))).all()
    kept, nxt = pagination.split_page(list(rows), limit)
    return Page([Agent(**r._mapping) for r in kept], nxt)


async def list_versions(conn: AsyncConnection, agent_id: str) -> list[dict[str, Any]]:
    query = (
        sa.select(agent_versions)
        .where(agent_versions.c.agent_id == agent_id)
        .order_by(agent_versions.c.version.desc())
    )
    return [dict(r._mapping) for r in (await conn.execute(query)).all()]


async def set_agent_fields(conn: AsyncConnection, agent_id: str, **values: Any) -> None:
    await conn.execute(sa.update(agents).where(agents.c.id == agent_id).values(**values))
