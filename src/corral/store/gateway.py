"""Repositories for gateway upstreams, model routes and the per-call usage records."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from corral.domain.gateway import (
    CallOutcome,
    CallRecord,
    ModelRoute,
    Target,
    Upstream,
    UpstreamKind,
)
from corral.store.errors import conflict_on_duplicate
from corral.store.tables import gateway_calls, gateway_models, gateway_upstreams

# -- upstreams ------------------------------------------------------------------------------


def _upstream(row: Any) -> Upstream:
    m = row._mapping
    return Upstream(
        id=m["id"], org_id=m["org_id"], name=m["name"], kind=UpstreamKind(m["kind"]),
        base_url=m["base_url"], timeout_seconds=m["timeout_seconds"],
        has_key=m["ciphertext"] is not None, headers=dict(m["headers"] or {}),
        created_at=m["created_at"], updated_at=m["updated_at"],
    )  # fmt: skip


async def insert_upstream(conn: AsyncConnection, values: dict[str, Any]) -> None:
    async with conflict_on_duplicate(f"upstream {values['name']!r} already exists"):
        await conn.execute(sa.insert(gateway_upstreams).values(**values))


async def update_upstream(conn: AsyncConnection, upstream_id: str, values: dict[str, Any]) -> None:
    await conn.execute(
        sa.update(gateway_upstreams).where(gateway_upstreams.c.id == upstream_id).values(**values)
    )


async def delete_upstream(conn: AsyncConnection, upstream_id: str) -> None:
    await conn.execute(sa.delete(gateway_upstreams).where(gateway_upstreams.c.id == upstream_id))


async def find_upstream(conn: AsyncConnection, org_id: str, ref: str) -> Upstream | None:
    """By id or by name, within the org."""
    query = sa.select(gateway_upstreams).where(
        gateway_upstreams.c.org_id == org_id,
        sa.or_(gateway_upstreams.c.id == ref, gateway_upstreams.c.name == ref),
    )
    row = (await conn.execute(query)).first()
    return _upstream(row) if row is not None else None


async def list_upstreams(conn: AsyncConnection, org_id: str) -> list[Upstream]:
    query = (
        sa.select(gateway_upstreams)
        .where(gateway_upstreams.c.org_id == org_id)
        .order_by(gateway_upstreams.c.name)
    )
    return [_upstream(r) for r in await conn.execute(query)]


async def sealed_upstreams(conn: AsyncConnection) -> list[tuple[Upstream, dict[str, Any]]]:
    """Every upstream of every org with its sealed key columns (the gateway's route table)."""
    rows = await conn.execute(sa.select(gateway_upstreams))
    return [(_upstream(r), dict(r._mapping)) for r in rows]


async def rewrap_upstream_key(
    conn: AsyncConnection, upstream_id: str, wrapped: bytes, kek_version: int
) -> None:
    await conn.execute(
        sa.update(gateway_upstreams)
        .where(gateway_upstreams.c.id == upstream_id)
        .values(wrapped_dek=wrapped, kek_version=kek_version)
    )


async def upstream_in_use(conn: AsyncConnection, org_id: str, upstream_id: str) -> list[str]:
    """Names of the org's model routes that still target the upstream."""
    return [
        route.name
        for route in await list_models(conn, org_id)
        if any(t.upstream_id == upstream_id for t in route.targets)
    ]


# -- model routes ---------------------------------------------------------------------------


def _route(row: Any) -> ModelRoute:
    m = row._mapping
    return ModelRoute(
        id=m["id"], org_id=m["org_id"], name=m["name"],
        targets=tuple(Target(t["upstream_id"], t["model"]) for t in m["targets"]),
        aliases=tuple(m["aliases"] or ()), max_output_tokens=m["max_output_tokens"],
        created_at=m["created_at"], updated_at=m["updated_at"],
    )  # fmt: skip


def route_values(route: ModelRoute) -> dict[str, Any]:
    return {
        "id": route.id, "org_id": route.org_id, "name": route.name,
        "targets": [{"upstream_id": t.upstream_id, "model": t.model} for t in route.targets],
        "aliases": list(route.aliases), "max_output_tokens": route.max_output_tokens,
        "created_at": route.created_at, "updated_at": route.updated_at,
    }  # fmt: skip


async def insert_model(conn: AsyncConnection, route: ModelRoute) -> None:
    async with conflict_on_duplicate(f"model {route.name!r} already exists"):
        await conn.execute(sa.insert(gateway_models).values(**route_values(route)))


async def update_model(conn: AsyncConnection, route: ModelRoute) -> None:
    values = route_values(route)
    del values["id"], values["created_at"]
    await conn.execute(
        sa.update(gateway_models).where(gateway_models.c.id == route.id).values(**values)
    )


async def delete_model(conn: AsyncConnection, route_id: str) -> None:
    await conn.execute(sa.delete(gateway_models).where(gateway_models.c.id == route_id))


async def find_model(conn: AsyncConnection, org_id: str, ref: str) -> ModelRoute | None:
    query = sa.select(gateway_models).where(
        gateway_models.c.org_id == org_id,
        sa.or_(gateway_models.c.id == ref, gateway_models.c.name == ref),
    )
    row = (await conn.execute(query)).first()
    return _route(row) if row is not None else None


async def list_models(conn: AsyncConnection, org_id: str | None) -> list[ModelRoute]:
    query = sa.select(gateway_models).order_by(gateway_models.c.name)
    if org_id is not None:
        query = query.where(gateway_models.c.org_id == org_id)
    return [_route(r) for r in await conn.execute(query)]


# -- calls ----------------------------------------------------------------------------------


_CALL_COLUMNS = tuple(gateway_calls.c.keys())
_CALL_VALUES = operator.attrgetter(*_CALL_COLUMNS)


async def insert_calls(conn: AsyncConnection, records: Sequence[CallRecord]) -> None:
    if records:
        # Not dataclasses.asdict: it deep-copies every value, ~100 us a record.
        rows = [dict(zip(_CALL_COLUMNS, _CALL_VALUES(r), strict=True)) for r in records]
        await conn.execute(sa.insert(gateway_calls), rows)


_RECORD_FIELDS = frozenset(CallRecord.__dataclass_fields__)


async def calls_of_session(conn: AsyncConnection, session_id: str, limit: int) -> list[CallRecord]:
    """A session's traced calls, oldest first, each with the base URL of the upstream that
    answered (``upstream_url``, when that upstream still exists): what its span is built from."""
    query = (
        sa.select(gateway_calls, gateway_upstreams.c.base_url.label("upstream_url"))
        .select_from(gateway_calls.outerjoin(
            gateway_upstreams, gateway_upstreams.c.id == gateway_calls.c.upstream_id))
        # Rows from before calls carried their span ids had their spans stored in ``spans``.
        .where(gateway_calls.c.session_id == session_id, gateway_calls.c.span_id.is_not(None))
        .order_by(gateway_calls.c.started_at, gateway_calls.c.id)
        .limit(limit)
    )  # fmt: skip
    records = []
    for row in await conn.execute(query):
        fields = {k: v for k, v in row._mapping.items() if k in _RECORD_FIELDS}
        records.append(CallRecord(**fields | {"outcome": CallOutcome(fields["outcome"])}))
    return records


GROUPABLE = ("model", "key_id", "session_id", "agent_id", "team_id", "user_id", "upstream_id",
             "outcome", "api", "day")  # fmt: skip
FILTERABLE = ("model", "key_id", "session_id", "agent_id", "team_id", "user_id", "upstream_id",
              "outcome", "api")  # fmt: skip


def _day(conn: AsyncConnection) -> sa.ColumnElement[Any]:
    if conn.dialect.name == "postgresql":
        return sa.func.to_char(
            sa.func.timezone("UTC", gateway_calls.c.started_at), "YYYY-MM-DD"
        ).label("day")
    return sa.func.substr(gateway_calls.c.started_at, 1, 10).label("day")


async def usage(
    conn: AsyncConnection,
    org_id: str,
    *,
    group_by: Sequence[str],
    filters: dict[str, str],
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Calls, tokens, cost and latency summed per group (the biggest spenders first)."""
    c = gateway_calls.c
    keys = [_day(conn) if g == "day" else c[g] for g in group_by]
    query = sa.select(
        *keys,
        sa.func.count().label("calls"),
        sa.func.sum(sa.case((c.outcome != "ok", 1), else_=0)).label("errors"),
        sa.func.sum(c.input_tokens).label("input_tokens"),
        sa.func.sum(c.output_tokens).label("output_tokens"),
        sa.func.sum(c.cache_read_tokens).label("cache_read_tokens"),
        sa.func.sum(c.cache_write_tokens).label("cache_write_tokens"),
        sa.func.sum(c.cost_micros).label("cost_micros"),
        sa.func.avg(c.latency_ms).label("avg_latency_ms"),
        sa.func.avg(c.ttft_ms).label("avg_ttft_ms"),
    ).where(c.org_id == org_id)
    for name, value in filters.items():
        query = query.where(c[name] == value)
    if since is not None:
        query = query.where(c.started_at >= since)
    if until is not None:
        query = query.where(c.started_at < until)
    if keys:
        query = query.group_by(*keys)
    query = query.order_by(sa.desc("cost_micros"), sa.desc("calls")).limit(limit)
    return [dict(r._mapping) for r in await conn.execute(query)]


async def recent_calls(
    conn: AsyncConnection, org_id: str, filters: dict[str, str], limit: int
) -> list[dict[str, Any]]:
    c = gateway_calls.c
    query = sa.select(gateway_calls).where(c.org_id == org_id)
    for name, value in filters.items():
        query = query.where(c[name] == value)
    query = query.order_by(c.started_at.desc()).limit(limit)
    return [dict(r._mapping) for r in await conn.execute(query)]


async def calls_of_batch(conn: AsyncConnection, batch_id: str, org_id: str) -> list[dict[str, Any]]:
    query = sa.select(gateway_calls).where(
        gateway_calls.c.batch_id == batch_id, gateway_calls.c.org_id == org_id
    )
    return [dict(r._mapping) for r in await conn.execute(query)]


async def batch_ids(conn: AsyncConnection) -> set[str | None]:
    """Every batch id call rows carry (None for a row that names none)."""
    rows = await conn.execute(sa.select(gateway_calls.c.batch_id).distinct())
    return {r[0] for r in rows}
