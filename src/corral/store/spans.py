"""Repositories for stored spans, and the facts a turn's trace needs (who ran it, its events)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from corral.domain.events import Event
from corral.store.tables import agent_versions, events, runtimes, sessions, spans


async def insert_spans(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Store spans; one already stored (same trace and span id: a rebuilt span) is kept."""
    if not rows:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    await conn.execute(insert(spans).on_conflict_do_nothing(), rows)


async def of_session(conn: AsyncConnection, session_id: str, limit: int) -> list[dict[str, Any]]:
    """A session's spans, oldest first (at most ``limit``)."""
    query = (
        sa.select(spans)
        .where(spans.c.session_id == session_id)
        .order_by(spans.c.started_at, spans.c.span_id)
        .limit(limit)
    )
    return [dict(r._mapping) for r in await conn.execute(query)]


async def span_ids(conn: AsyncConnection, trace_id: str) -> set[str]:
    query = sa.select(spans.c.span_id).where(spans.c.trace_id == trace_id)
    return {str(r.span_id) for r in await conn.execute(query)}


async def turn_facts(conn: AsyncConnection, session_id: str) -> dict[str, Any] | None:
    """Who runs the session's turns: its agent version, model, runtime and user."""
    join = sessions.join(
        agent_versions,
        sa.and_(
            agent_versions.c.agent_id == sessions.c.agent_id,
            agent_versions.c.version == sessions.c.agent_version,
        ),
    ).join(runtimes, runtimes.c.id == sessions.c.runtime_id)
    query = (
        sa.select(
            sessions.c.agent_id,
            agent_versions.c.name.label("agent_name"),
            sessions.c.agent_version,
            agent_versions.c.model,
            sessions.c.runtime_id,
            runtimes.c.kind.label("runtime_kind"),
            runtimes.c.base_url,
            sessions.c.user_id,
        )
        .select_from(join)
        .where(sessions.c.id == session_id)
    )
    row = (await conn.execute(query)).first()
    return dict(row._mapping) if row else None


async def turn_events(
    conn: AsyncConnection, session_id: str, turn_id: str, *, skip: Iterable[str] = ()
) -> list[Event]:
    """One turn's events in order (without the types in ``skip``)."""
    query = sa.select(events).where(events.c.session_id == session_id, events.c.turn_id == turn_id)
    skipped = list(skip)
    if skipped:
        query = query.where(events.c.type.not_in(skipped))
    return [Event(**r._mapping) for r in await conn.execute(query.order_by(events.c.seq))]
