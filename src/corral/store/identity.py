"""Repositories for orgs, teams, users and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from corral.domain.records import ApiKey, Org, Page, Team, User
from corral.domain.roles import Role
from corral.store import pagination
from corral.store.errors import conflict_on_duplicate
from corral.store.governance import epoch_column
from corral.store.tables import api_keys, orgs, teams, users
from corral.store.types import fields_of


def _key(row: Any) -> ApiKey:
    data = dict(row._mapping)
    data["role"] = Role(data["role"])
    return ApiKey(**data)


def _user(row: Any) -> User:
    data = dict(row._mapping)
    data["role"] = Role(data["role"])
    return User(**data)


async def insert_org(conn: AsyncConnection, org: Org) -> None:
    async with conflict_on_duplicate(f"org {org.name!r} already exists"):
        await conn.execute(
            sa.insert(orgs).values(id=org.id, name=org.name, created_at=org.created_at)
        )


async def first_org(conn: AsyncConnection) -> Org | None:
    row = (await conn.execute(sa.select(orgs).order_by(orgs.c.created_at).limit(1))).first()
    return Org(**row._mapping) if row else None


async def insert_team(conn: AsyncConnection, team: Team) -> None:
    async with conflict_on_duplicate(f"team {team.name!r} already exists"):
        await conn.execute(sa.insert(teams).values(**fields_of(team)))


async def get_team(conn: AsyncConnection, team_id: str) -> Team | None:
    row = (await conn.execute(sa.select(teams).where(teams.c.id == team_id))).first()
    return Team(**row._mapping) if row else None


async def list_teams(
    conn: AsyncConnection, org_id: str, *, team_id: str | None, cursor: str | None, limit: int
) -> Page[Team]:
    query = sa.select(teams).where(teams.c.org_id == org_id)
    if team_id is not None:
        query = query.where(teams.c.id == team_id)
    rows = (await conn.execute(pagination.newest_first(query, teams, cursor, limit))).all()
    kept, nxt = pagination.split_page(list(rows), limit)
    return Page([Team(**r._mapping) for r in kept], nxt)


async def insert_user(conn: AsyncConnection, user: User) -> None:
    async with conflict_on_duplicate(f"a user with email {user.email!r} already exists"):
        await conn.execute(sa.insert(users).values(**fields_of(user)))


async def get_user(conn: AsyncConnection, user_id: str) -> User | None:
    row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).first()
    return _user(row) if row else None


async def list_users(
    conn: AsyncConnection, org_id: str, *, team_id: str | None, cursor: str | None, limit: int
) -> Page[User]:
    query = sa.select(users).where(users.c.org_id == org_id)
    if team_id is not None:
        query = query.where(users.c.team_id == team_id)
    rows = (await conn.execute(pagination.newest_first(query, users, cursor, limit))).all()
    kept, nxt = pagination.split_page(list(rows), limit)
    return Page([_user(r) for r in kept], nxt)


async def insert_key(conn: AsyncConnection, key: ApiKey) -> None:
    await conn.execute(sa.insert(api_keys).values(**fields_of(key)))


async def get_key(conn: AsyncConnection, key_id: str) -> ApiKey | None:
    row = (await conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id))).first()
    return _key(row) if row else None


async def get_key_by_prefix(conn: AsyncConnection, prefix: str) -> ApiKey | None:
    row = (await conn.execute(sa.select(api_keys).where(api_keys.c.prefix == prefix))).first()
    return _key(row) if row else None


async def get_key_and_epoch(conn: AsyncConnection, prefix: str) -> tuple[ApiKey | None, int]:
    """A key by prefix and the governance epoch, in one round trip (every request does this)."""
    query = sa.select(api_keys, epoch_column().label("governance_epoch")).where(
        api_keys.c.prefix == prefix
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None, 0
    mapping = dict(row._mapping)
    epoch = int(mapping.pop("governance_epoch") or 0)
    return ApiKey(**{**mapping, "role": Role(mapping["role"])}), epoch


async def list_keys(
    conn: AsyncConnection,
    org_id: str,
    *,
    team_id: str | None,
    user_id: str | None,
    include_revoked: bool,
    cursor: str | None,
    limit: int,
) -> Page[ApiKey]:
    query = sa.select(api_keys).where(api_keys.c.org_id == org_id)
    if team_id is not None:
        query = query.where(api_keys.c.team_id == team_id)
    if user_id is not None:
        query = query.where(api_keys.c.user_id == user_id)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    rows = (await conn.execute(pagination.newest_first(query, api_keys, cursor, limit))).all()
    kept, nxt = pagination.split_page(list(rows), limit)
    return Page([_key(r) for r in kept], nxt)


async def revoke_key(conn: AsyncConnection, key_id: str, at: datetime) -> None:
    await conn.execute(
        sa.update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=at)
    )


async def touch_key(conn: AsyncConnection, key_id: str, at: datetime) -> None:
    await conn.execute(sa.update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=at))
