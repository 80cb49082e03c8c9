"""Lease renewal never waits on a turn row another transaction holds (it could deadlock)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa

from corral.domain.ids import new_id
from corral.store import leases
from corral.store import sessions as session_repo
from corral.store.tables import turns
from corral.store.types import utcnow
from tests.support.corral import CorralServer
from tests.support.fleet import developer_agent, make_session

OWNER = "replica-a"


async def _turns(corral: CorralServer, opencode_sim_url: str, n: int) -> list[str]:
    dev, agent = await developer_agent(corral, opencode_sim_url, "l@x.io")
    made = await make_session(corral, dev["key"], agent["id"])
    ids, now = [], utcnow()
    async with corral.services.db.write() as conn:
        for i in range(n):
            input_id, turn_id = new_id("input"), new_id("turn")
            await session_repo.insert_input(
                conn, input_id=input_id, session_id=made["id"], turn_id=turn_id, text="x", at=now
            )
            await session_repo.insert_turn(
                conn, turn_id=turn_id, session_id=made["id"], ordinal=i + 1, input_id=input_id,
                at=now, owner=OWNER, lease_until=now + timedelta(seconds=5),
            )  # fmt: skip
            ids.append(turn_id)
    return sorted(ids)


async def _lease_of(corral: CorralServer, turn_id: str) -> object:
    async with corral.services.db.read() as conn:
        query = sa.select(turns.c.lease_expires_at).where(turns.c.id == turn_id)
        return (await conn.execute(query)).scalar_one()


async def test_a_locked_turn_is_skipped_and_renewed_next_time(
    corral: CorralServer, opencode_sim_url: str
) -> None:
    if not corral.services.db.is_postgres:
        pytest.skip("SQLite has one writer at a time: nothing to skip")
    held, free = await _turns(corral, opencode_sim_url, 2)
    before = await _lease_of(corral, held)
    until = utcnow() + timedelta(minutes=1)
    db = corral.services.db
    async with db.write() as holder:  # e.g. a writer batch finishing that turn
        await holder.execute(sa.select(turns.c.id).where(turns.c.id == held).with_for_update())

        async def renew() -> set[str]:
            async with db.write() as conn:
                return await leases.renew(conn, OWNER, [held, free], until)

        assert await asyncio.wait_for(renew(), 5) == set()  # would block (or deadlock) if waiting
    assert await _lease_of(corral, held) == before
    assert await _lease_of(corral, free) == until
    async with db.write() as conn:
        await leases.renew(conn, OWNER, [held, free], until)
    assert await _lease_of(corral, held) == until


async def test_renewal_reports_turns_taken_over(
    corral: CorralServer, opencode_sim_url: str
) -> None:
    mine, theirs = await _turns(corral, opencode_sim_url, 2)
    async with corral.services.db.write() as conn:
        await conn.execute(sa.update(turns).where(turns.c.id == theirs).values(owner="replica-b"))
    until = utcnow() + timedelta(minutes=1)
    async with corral.services.db.write() as conn:
        assert await leases.renew(conn, OWNER, [mine, theirs], until) == {theirs}
    assert await _lease_of(corral, mine) == until
