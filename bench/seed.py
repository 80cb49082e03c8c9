"""Rows written straight into the tables with SQLAlchemy Core, for scenarios that need volume.

Nothing here goes through the API: it stands in for a Corral that has been running for a while.
The bootstrap org and admin of the running server own everything, so the admin key sees it all.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from corral.domain.ids import new_id
from corral.domain.states import SessionState
from corral.store import tables as t
from corral.store.db import Database
from corral.store.types import utcnow

#: How stored sessions are spread over states: mostly finished, a few live or broken.
STATE_WEIGHTS: dict[SessionState, int] = {
    SessionState.IDLE: 70,
    SessionState.CREATED: 8,
    SessionState.TERMINATED: 8,
    SessionState.FAILED: 6,
    SessionState.RUNNING: 5,
    SessionState.WAITING_APPROVAL: 2,
    SessionState.WAITING_INPUT: 1,
}


@dataclass(frozen=True, slots=True)
class Fleet:
    org_id: str
    user_id: str
    runtime_id: str
    teams: list[str]
    agents: list[tuple[str, str]]  # (agent_id, team_id)


async def seed_fleet(
    db: Database,
    *,
    org_id: str,
    user_id: str,
    teams: int,
    agents_per_team: int,
    base_url: str = "http://127.0.0.1:9",
) -> Fleet:
    """Teams, one OpenCode runtime, and agents (version 1 each) in ``org_id``."""
    now = utcnow()
    runtime_id = new_id("runtime")
    tag = runtime_id[-6:]  # keeps names unique when one org is seeded twice
    team_rows: list[dict[str, Any]] = [
        {"id": new_id("team"), "org_id": org_id, "name": f"bench-{tag}-{i}", "created_at": now}
        for i in range(teams)
    ]
    agent_rows: list[dict[str, Any]] = []
    version_rows: list[dict[str, Any]] = []
    for team in team_rows:
        for j in range(agents_per_team):
            agent_id, name = new_id("agent"), f"bench-agent-{j}"
            agent_rows.append(
                {
                    "id": agent_id, "org_id": org_id, "team_id": team["id"],
                    "runtime_id": runtime_id, "name": name, "version": 1, "paused": False,
                    "created_by": user_id, "created_at": now, "updated_at": now,
                    "deleted_at": None,
                }
            )  # fmt: skip
            version_rows.append(
                {
                    "agent_id": agent_id, "version": 1, "name": name, "runtime_id": runtime_id,
                    "model": "mock/mock-model", "instructions": "Be brief.", "tools": [],
                    "metadata": {}, "created_by": user_id, "created_at": now,
                }
            )  # fmt: skip
    async with db.write() as conn:
        await conn.execute(
            sa.insert(t.runtimes).values(
                id=runtime_id, org_id=org_id, name=f"bench-{tag}", kind="opencode",
                base_url=base_url, config={}, created_at=now, updated_at=now,
            )
        )  # fmt: skip
        await conn.execute(sa.insert(t.teams), team_rows)
        await conn.execute(sa.insert(t.agents), agent_rows)
        await conn.execute(sa.insert(t.agent_versions), version_rows)
    return Fleet(
        org_id=org_id,
        user_id=user_id,
        runtime_id=runtime_id,
        teams=[r["id"] for r in team_rows],
        agents=[(r["id"], r["team_id"]) for r in agent_rows],
    )


def session_row(
    fleet: Fleet,
    agent: tuple[str, str],
    *,
    state: SessionState,
    created_at: datetime,
    rng: random.Random,
    title: str | None = None,
) -> dict[str, Any]:
    agent_id, team_id = agent
    finished = state not in (SessionState.CREATED,)
    turns = rng.randint(1, 12) if finished else 0
    last = created_at + timedelta(seconds=rng.randint(5, 3600)) if finished else created_at
    return {
        "id": new_id("session"),
        "org_id": fleet.org_id,
        "team_id": team_id,
        "agent_id": agent_id,
        "agent_version": 1,
        "runtime_id": fleet.runtime_id,
        "user_id": fleet.user_id,
        "key_id": None,
        "native_session_id": f"ses_bench{rng.getrandbits(64):016x}",
        "state": state.value,
        "stop_reason": "error" if state is SessionState.FAILED else None,
        "title": title,
        "last_seq": turns * rng.randint(8, 40),
        "turns": turns,
        "current_turn_id": None,
        "input_tokens": turns * rng.randint(200, 4000),
        "output_tokens": turns * rng.randint(50, 800),
        "cost_micros": turns * rng.randint(100, 20_000),
        "error": {"code": "upstream_error", "message": "bench"}
        if state is SessionState.FAILED
        else None,
        "created_at": created_at,
        "updated_at": last,
        "last_activity_at": last,
    }


async def insert_sessions(
    db: Database,
    fleet: Fleet,
    count: int,
    *,
    days: int = 90,
    batch: int = 5000,
    seed: int = 20240611,
) -> Counter[str]:
    """``count`` sessions over the last ``days`` days, spread over agents and states.

    Returns how many sessions landed in each state.
    """
    rng = random.Random(seed)
    states = list(STATE_WEIGHTS)
    weights = list(STATE_WEIGHTS.values())
    end = utcnow()
    span = days * 86_400.0
    tally: Counter[str] = Counter()
    done = 0
    while done < count:
        rows = []
        for i in range(done, min(done + batch, count)):
            state = rng.choices(states, weights)[0]
            tally[state.value] += 1
            created = end - timedelta(seconds=rng.random() * span)
            agent = fleet.agents[rng.randrange(len(fleet.agents))]
            rows.append(session_row(fleet, agent, state=state, created_at=created, rng=rng,
                                    title=f"bench session {i}"))  # fmt: skip
        async with db.write() as conn:
            await conn.execute(sa.insert(t.sessions), rows)
        done += len(rows)
    return tally


async def analyze(db: Database) -> None:
    """Refresh planner statistics, as PostgreSQL's autovacuum would shortly after a bulk load."""
    async with db.engine.connect() as conn:
        if db.is_postgres:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("ANALYZE"))
        else:
            await conn.execute(sa.text("ANALYZE"))
            await conn.commit()
