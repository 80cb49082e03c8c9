"""Repositories for policies (and their versions), budgets, model prices and the epoch."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from corral.domain.records import Budget, ModelPriceRow, Page, Policy
from corral.store import pagination
from corral.store.db import EPOCH_BUMPED
from corral.store.errors import conflict_on_duplicate
from corral.store.tables import (
    agents,
    api_keys,
    budgets,
    governance_epoch,
    model_prices,
    policies,
    policy_versions,
)
from corral.store.types import fields_of

#: PostgreSQL NOTIFY channel; payload is the new epoch.
GOVERNANCE_CHANNEL = "corral_governance"


# -- epoch ----------------------------------------------------------------------------------


async def read_epoch(conn: AsyncConnection) -> int:
    value = (await conn.execute(sa.select(governance_epoch.c.epoch))).scalar()
    return int(value or 0)


def epoch_column() -> sa.ScalarSelect[Any]:
    """The epoch as a scalar subquery, to read it in the same round trip as something else."""
    return sa.select(governance_epoch.c.epoch).where(governance_epoch.c.id == 1).scalar_subquery()


async def bump_epoch(conn: AsyncConnection) -> int:
    """Move the epoch on in the caller's transaction, and tell every replica at commit."""
    await conn.execute(
        sa.update(governance_epoch)
        .where(governance_epoch.c.id == 1)
        .values(epoch=governance_epoch.c.epoch + 1)
    )
    epoch = await read_epoch(conn)
    conn.info[EPOCH_BUMPED] = True
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pg_notify(GOVERNANCE_CHANNEL, str(epoch))))
    return epoch


# -- snapshot sources -----------------------------------------------------------------------


async def all_policies(conn: AsyncConnection) -> list[Policy]:
    rows = await conn.execute(sa.select(policies).where(policies.c.enabled.is_(True)))
    return [Policy(**r._mapping) for r in rows]


async def all_budgets(conn: AsyncConnection) -> list[Budget]:
    return [Budget(**r._mapping) for r in await conn.execute(sa.select(budgets))]


async def all_prices(conn: AsyncConnection) -> list[ModelPriceRow]:
    return [ModelPriceRow(**r._mapping) for r in await conn.execute(sa.select(model_prices))]


async def paused_agent_ids(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(sa.select(agents.c.id).where(agents.c.paused.is_(True)))
    return [r.id for r in rows]


async def revoked_key_ids(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(sa.select(api_keys.c.id).where(api_keys.c.revoked_at.is_not(None)))
    return [r.id for r in rows]


# -- policies -------------------------------------------------------------------------------


async def insert_policy(conn: AsyncConnection, policy: Policy) -> None:
    await conn.execute(sa.insert(policies).values(**fields_of(policy)))
    await _remember_version(conn, policy, deleted=False)


async def update_policy(conn: AsyncConnection, policy: Policy, by: str | None) -> None:
    """Store a new version; ``created_by`` stays the author, ``by`` is recorded as its changer."""
    values = fields_of(policy)
    await conn.execute(sa.update(policies).where(policies.c.id == policy.id).values(**values))
    await _remember_version(conn, replace(policy, created_by=by), deleted=False)


async def delete_policy(
    conn: AsyncConnection, policy: Policy, by: str | None, at: datetime
) -> None:
    await conn.execute(sa.delete(policies).where(policies.c.id == policy.id))
    gone = Policy(**{**fields_of(policy), "version": policy.version + 1, "created_by": by,
                     "updated_at": at})  # fmt: skip
    await _remember_version(conn, gone, deleted=True)


async def _remember_version(conn: AsyncConnection, policy: Policy, *, deleted: bool) -> None:
    await conn.execute(
        sa.insert(policy_versions).values(
            policy_id=policy.id,
            org_id=policy.org_id,
            version=policy.version,
            body=policy.body,
            enabled=policy.enabled,
            deleted=deleted,
            changed_by=policy.created_by,
            changed_at=policy.updated_at,
        )
    )


async def get_policy(
    conn: AsyncConnection, policy_id: str, *, for_update: bool = False
) -> Policy | None:
    query = sa.select(policies).where(policies.c.id == policy_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return Policy(**row._mapping) if row else None


async def policy_history(
    conn: AsyncConnection, org_id: str, policy_id: str
) -> list[dict[str, Any]]:
    """Every version of a policy of this org (deleted ones included), oldest first."""
    rows = await conn.execute(
        sa.select(policy_versions)
        .where(policy_versions.c.policy_id == policy_id, policy_versions.c.org_id == org_id)
        .order_by(policy_versions.c.version)
    )
    return [dict(r._mapping) for r in rows]


async def list_policies(
    conn: AsyncConnection,
    org_id: str,
    *,
    scopes: list[tuple[str, str]] | None,
    kind: str | None,
    cursor: str | None,
    limit: int,
) -> Page[Policy]:
    query = sa.select(policies).where(policies.c.org_id == org_id)
    if scopes is not None:
        query = query.where(
            sa.or_(
                sa.false(),
                *(sa.and_(policies.c.scope_kind == k, policies.c.scope_id == i) for k, i in scopes),
            )
        )
    if kind is not None:
        query = query.where(policies.c.kind == kind)
    rows = (await conn.execute(pagination.newest_first(query, policies, cursor, limit))).all()
    kept, next_cursor = pagination.split_page(rows, limit)
    return Page([Policy(**r._mapping) for r in kept], next_cursor)


# -- budgets --------------------------------------------------------------------------------


async def get_budget(conn: AsyncConnection, budget_id: str) -> Budget | None:
    row = (await conn.execute(sa.select(budgets).where(budgets.c.id == budget_id))).first()
    return Budget(**row._mapping) if row else None


async def find_budget(
    conn: AsyncConnection, org_id: str, scope_kind: str, scope_id: str, period: str
) -> Budget | None:
    query = sa.select(budgets).where(
        budgets.c.org_id == org_id,
        budgets.c.scope_kind == scope_kind,
        budgets.c.scope_id == scope_id,
        budgets.c.period == period,
    )
    row = (await conn.execute(query)).first()
    return Budget(**row._mapping) if row else None


async def upsert_budget(conn: AsyncConnection, budget: Budget, *, new: bool) -> None:
    if new:
        async with conflict_on_duplicate("a budget for this scope and period already exists"):
            await conn.execute(sa.insert(budgets).values(**fields_of(budget)))
    else:
        await conn.execute(
            sa.update(budgets).where(budgets.c.id == budget.id).values(**fields_of(budget))
        )


async def delete_budget(conn: AsyncConnection, budget_id: str) -> None:
    await conn.execute(sa.delete(budgets).where(budgets.c.id == budget_id))


async def list_budgets(
    conn: AsyncConnection,
    org_id: str,
    *,
    scopes: list[tuple[str, str]] | None,
    cursor: str | None,
    limit: int,
) -> Page[Budget]:
    query = sa.select(budgets).where(budgets.c.org_id == org_id)
    if scopes is not None:
        query = query.where(
            sa.or_(
                sa.false(),
                *(sa.and_(budgets.c.scope_kind == k, budgets.c.scope_id == i) for k, i in scopes),
            )
        )
    rows = (await conn.execute(pagination.newest_first(query, budgets, cursor, limit))).all()
    kept, next_cursor = pagination.split_page(rows, limit)
    return Page([Budget(**r._mapping) for r in kept], next_cursor)


# -- prices ---------------------------------------------------------------------------------


async def put_price(conn: AsyncConnection, price: ModelPriceRow) -> None:
    await conn.execute(
        sa.delete(model_prices).where(
            model_prices.c.org_id == price.org_id, model_prices.c.model == price.model
        )
    )
    await conn.execute(sa.insert(model_prices).values(**fields_of(price)))


async def delete_price(conn: AsyncConnection, org_id: str, model: str) -> bool:
    result = await conn.execute(
        sa.delete(model_prices).where(
            model_prices.c.org_id == org_id, model_prices.c.model == model
        )
    )
    return bool(result.rowcount)


async def org_prices(conn: AsyncConnection, org_id: str) -> list[ModelPriceRow]:
    rows = await conn.execute(sa.select(model_prices).where(model_prices.c.org_id == org_id))
    return [ModelPriceRow(**r._mapping) for r in rows]
