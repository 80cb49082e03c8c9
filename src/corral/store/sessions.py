"""Repositories for sessions, their turns and the input outbox."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from corral.domain.records import Page, Session
from corral.domain.states import SessionState
from corral.store import pagination
from corral.store.tables import inputs, sessions, turns
from corral.store.types import fields_of


def session_of(row: Any) -> Session:
    data = dict(row._mapping)
    data["state"] = SessionState(data["state"])
    return Session(**data)


@dataclass(frozen=True, slots=True)
class SessionFilter:
    org_id: str
    team_id: str | None = None
    agent_id: str | None = None
    runtime_id: str | None = None
    user_id: str | None = None
    states: tuple[SessionState, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None


async def insert_session(conn: AsyncConnection, session: Session) -> None:
    values = fields_of(session)
    values["state"] = session.state.value
    await conn.execute(sa.insert(sessions).values(**values))


async def get_session(
    conn: AsyncConnection, session_id: str, *, for_update: bool = False
) -> Session | None:
    query = sa.select(sessions).where(sessions.c.id == session_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return session_of(row) if row else None


async def update_session(conn: AsyncConnection, session_id: str, **values: Any) -> None:
    if isinstance(values.get("state"), SessionState):
        values["state"] = values["state"].value
    await conn.execute(sa.update(sessions).where(sessions.c.id == session_id).values(**values))


async def add_usage(
    conn: AsyncConnection,
    session_id: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cost_micros: int,
) -> None:
    await conn.execute(
        sa.update(sessions)
        .where(sessions.c.id == session_id)
        .values(
            input_tokens=sessions.c.input_tokens + input_tokens,
            output_tokens=sessions.c.output_tokens + output_tokens,
            cost_micros=sessions.c.cost_micros + cost_micros,
        )
    )


async def list_sessions(
    conn: AsyncConnection, where: SessionFilter, *, cursor: str | None, limit: int
) -> Page[Session]:
    query = sa.select(sessions).where(sessions.c.org_id == where.org_id)
    for column, value in (
        (sessions.c.team_id, where.team_id),
        (sessions.c.agent_id, where.agent_id),
        (sessions.c.runtime_id, where.runtime_id),
        (sessions.c.user_id, where.user_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if where.states:
        query = query.where(sessions.c.state.in_([s.value for s in where.states]))
    if where.created_after is not None:
        query = query.where(sessions.c.created_at >= where.created_after)
    if where.created_before is not None:
        query = query.where(sessions.c.created_at < where.created_before)
    rows = (await conn.execute(pagination.newest_first(query, sessions, cursor, limit))).all()
    kept, nxt = pagination.split_page(list(rows), limit)
    return Page([session_of(r) for r in kept], nxt)


async def sessions_in_states(
    conn: AsyncConnection, states: frozenset[SessionState]
) -> list[Session]:
    query = sa.select(sessions).where(sessions.c.state.in_([s.value for s in states]))
    return [session_of(r) for r in (await conn.execute(query)).all()]


async def insert_turn(
    conn: AsyncConnection,
    *,
    turn_id: str,
    session_id: str,
    ordinal: int,
    input_id: str,
    at: datetime,
    owner: str,
    lease_until: datetime,
) -> None:
    await conn.execute(
        sa.insert(turns).values(
            id=turn_id,
            session_id=session_id,
            ordinal=ordinal,
            input_id=input_id,
            owner=owner,
            lease_expires_at=lease_until,
            status="running",
            started_at=at,
        )
    )


async def finish_turn(
    conn: AsyncConnection, turn_id: str, *, status: str, stop_reason: str, at: datetime
) -> None:
    await conn.execute(
        sa.update(turns)
        .where(turns.c.id == turn_id, turns.c.completed_at.is_(None))
        .values(status=status, stop_reason=stop_reason, completed_at=at)
    )


async def insert_input(
    conn: AsyncConnection, *, input_id: str, session_id: str, turn_id: str, text: str, at: datetime
) -> None:
    await conn.execute(
        sa.insert(inputs).values(
            id=input_id,
            session_id=session_id,
            turn_id=turn_id,
            text=text,
            status="pending",
            created_at=at,
        )
    )


async def mark_input(conn: AsyncConnection, input_id: str, status: str, at: datetime) -> None:
    await conn.execute(
        sa.update(inputs).where(inputs.c.id == input_id).values(status=status, delivered_at=at)
    )


async def count_sessions(conn: AsyncConnection) -> int:
    return int((await conn.execute(sa.select(sa.func.count()).select_from(sessions))).scalar_one())


async def count_by_state(conn: AsyncConnection) -> dict[str, int]:
    """Sessions per state, across every org (the ``/metrics`` gauge): one GROUP BY."""
    query = sa.select(sessions.c.state, sa.func.count()).group_by(sessions.c.state)
    return {str(state): int(n) for state, n in (await conn.execute(query)).all()}


async def turn_of_input(conn: AsyncConnection, input_id: str) -> str:
    row = (await conn.execute(sa.select(inputs.c.turn_id).where(inputs.c.id == input_id))).first()
    return str(row.turn_id) if row else ""


_SCOPE_COLUMNS = {
    "org": sessions.c.org_id,
    "team": sessions.c.team_id,
    "agent": sessions.c.agent_id,
    "user": sessions.c.user_id,
    "key": sessions.c.key_id,
    "session": sessions.c.id,
}


async def count_in_scope(
    conn: AsyncConnection, scope_kind: str, scope_id: str, *, states: Iterable[str]
) -> int:
    """Sessions of one scope (``team:...``, ``agent:...``) in any of ``states``."""
    query = (
        sa.select(sa.func.count())
        .select_from(sessions)
        .where(_SCOPE_COLUMNS[scope_kind] == scope_id, sessions.c.state.in_(list(states)))
    )
    return int((await conn.execute(query)).scalar_one())


async def live_sessions_matching(
    conn: AsyncConnection,
    org_id: str,
    *,
    filters: dict[str, str],
    limit: int = 10_000,
) -> list[Session]:
    """Sessions not yet terminated whose scope columns equal ``filters`` (kill switch)."""
    columns = {**_SCOPE_COLUMNS, "runtime": sessions.c.runtime_id}
    query = sa.select(sessions).where(
        sessions.c.org_id == org_id, sessions.c.state != SessionState.TERMINATED.value
    )
    for name, value in filters.items():
        query = query.where(columns[name] == value)
    rows = await conn.execute(query.order_by(sessions.c.created_at).limit(limit))
    return [session_of(r) for r in rows]


async def last_seqs(conn: AsyncConnection, session_ids: Sequence[str]) -> dict[str, int]:
    """The current ``last_seq`` of each of the sessions that exist."""
    query = sa.select(sessions.c.id, sessions.c.last_seq)
    if conn.dialect.name == "postgresql":
        # One array parameter: the same statement whatever the number of ids.
        ids = sa.bindparam("ids", list(session_ids), type_=postgresql.ARRAY(sa.Text))
        query = query.where(sessions.c.id == sa.any_(ids))
    else:
        query = query.where(sessions.c.id.in_(session_ids))
    return {str(r.id): int(r.last_seq) for r in (await conn.execute(query)).all()}
