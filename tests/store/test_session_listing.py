"""Keyset pagination over sessions on both databases: complete, ordered, stable under ties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from corral.domain.states import SessionState
from corral.store import migrate, tables
from corral.store import sessions as repo
from corral.store.db import Database
from corral.store.sessions import SessionFilter


async def test_pages_cover_every_row_once_newest_first(database_url: str) -> None:
    db = Database(database_url)
    await migrate.upgrade(db)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    async with db.write() as conn:
        await conn.execute(sa.insert(tables.orgs).values(id="org_1", name="o", created_at=base))
        await conn.execute(
            sa.insert(tables.teams).values(id="team_1", org_id="org_1", name="t", created_at=base)
        )
        await conn.execute(sa.insert(tables.runtimes).values(id="rt_1", org_id="org_1", name="r", kind="opencode",
                                                             base_url="http://x", config={}, created_at=base, updated_at=base))  # fmt: skip
        await conn.execute(sa.insert(tables.agents).values(id="agt_1", org_id="org_1", team_id="team_1", runtime_id="rt_1",
                                                           name="a", version=1, paused=False, created_at=base, updated_at=base))  # fmt: skip
        rows = []
        for i in range(23):
            # Groups of three share a timestamp, so ties are broken by id.
            at = base + timedelta(seconds=i // 3)
            state = SessionState.IDLE if i % 2 else SessionState.FAILED
            rows.append({
                "id": f"ses_{i:03d}", "org_id": "org_1", "team_id": "team_1", "agent_id": "agt_1",
                "agent_version": 1, "runtime_id": "rt_1", "state": state.value, "last_seq": 0, "turns": 0,
                "input_tokens": 0, "output_tokens": 0, "cost_micros": 0, "created_at": at,
                "updated_at": at, "last_activity_at": at,
            })  # fmt: skip
        await conn.execute(sa.insert(tables.sessions), rows)
    seen: list[str] = []
    cursor = None
    async with db.read() as conn:
        while True:
            page = await repo.list_sessions(
                conn, SessionFilter(org_id="org_1"), cursor=cursor, limit=4
            )
            seen += [s.id for s in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        failed = await repo.list_sessions(
            conn,
            SessionFilter(org_id="org_1", states=(SessionState.FAILED,)),
            cursor=None,
            limit=50,
        )
        window = await repo.list_sessions(
            conn,
            SessionFilter(
                org_id="org_1",
                created_after=base + timedelta(seconds=2),
                created_before=base + timedelta(seconds=4),
            ),
            cursor=None,
            limit=50,
        )
    assert seen == [f"ses_{i:03d}" for i in range(22, -1, -1)]
    assert [s.id for s in failed.items] == [f"ses_{i:03d}" for i in range(22, -1, -2)]
    assert sorted(s.id for s in window.items) == [f"ses_{i:03d}" for i in range(6, 12)]
    await db.dispose()
