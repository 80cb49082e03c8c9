"""Fleet query latency: ``GET /v1/sessions`` over a large stored fleet, through the HTTP API.

Sessions are bulk-inserted with SQLAlchemy Core (see :mod:`bench.seed`): 4 teams x 5 agents,
states mostly ``idle``, ``created_at`` spread over 90 days, plus one small agent with only
10 sessions. PostgreSQL is then ANALYZEd (autovacuum would do so shortly after such a load);
SQLite is left as Corral leaves it, without statistics. Then, with the admin key (which sees
every team), each query shape is timed end to end: authentication, the keyset-paginated query
(default page size, 50), and JSON serialization of the page.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.harness import Databases, Latency, corral_server, database, expect
from bench.seed import analyze, insert_sessions, seed_fleet
from corral.store import tables as t
from corral.store.db import Database
from corral.store.pagination import encode_cursor

WARMUP = 5
STATE_FILTER = "failed"  # ~6% of the fleet: the "what broke?" query
SMALL_AGENT_SESSIONS = 10
FAR_FRACTION = 0.9  # the far page starts this far into the newest-first order


async def _timed_get(client: httpx.AsyncClient, params: dict[str, Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    response = await client.get("/v1/sessions", params=params)
    elapsed = time.perf_counter() - started
    body = await expect(response)
    if not body["data"]:
        raise RuntimeError(f"GET /v1/sessions {params} returned an empty page")
    return elapsed, body


async def _series(client: httpx.AsyncClient, params: Iterator[dict[str, Any]], n: int) -> Latency:
    for _ in range(WARMUP):
        await _timed_get(client, next(params))
    return Latency.of([(await _timed_get(client, next(params)))[0] for _ in range(n)])


async def run(
    dbs: Databases,
    backend: str,
    workdir: Path,
    *,
    sessions: int,
    repeats: int,
    deep_walks: int,
    deep_pages: int = 20,
) -> dict[str, Any]:
    async with database(dbs, backend, "fleet") as url, corral_server(url, workdir) as corral:
        services = corral.services
        assert services.bootstrap is not None
        fleet = await seed_fleet(
            services.db,
            org_id=services.bootstrap.org.id,
            user_id=services.bootstrap.admin.id,
            teams=4,
            agents_per_team=5,
        )
        started = time.perf_counter()
        tally = await insert_sessions(services.db, fleet, sessions)
        load_seconds = time.perf_counter() - started
        # One more agent, new to the fleet, with only a handful of sessions among the many.
        small = await seed_fleet(
            services.db,
            org_id=fleet.org_id,
            user_id=fleet.user_id,
            teams=1,
            agents_per_team=1,
        )
        await insert_sessions(services.db, small, SMALL_AGENT_SESSIONS, seed=7)
        analyzed = services.db.is_postgres
        if analyzed:
            await analyze(services.db)

        agents = itertools.cycle([{"agent_id": a} for a, _ in fleet.agents])
        teams = itertools.cycle([{"team_id": team} for team in fleet.teams])
        results: dict[str, Any] = {
            "sessions": sessions,
            "load_seconds": round(load_seconds, 2),
            "states": dict(sorted(tally.items())),
            "analyzed": analyzed,
        }
        async with corral.admin() as admin:
            results["newest"] = (await _series(admin, itertools.repeat({}), repeats)).as_dict()
            results["by_agent"] = (await _series(admin, agents, repeats)).as_dict()
            only_small = itertools.repeat({"agent_id": small.agents[0][0]})
            results["by_small_agent"] = (await _series(admin, only_small, repeats)).as_dict()
            results["by_state"] = (
                await _series(admin, itertools.repeat({"state": STATE_FILTER}), repeats)
            ).as_dict()
            results["by_team"] = (await _series(admin, teams, repeats)).as_dict()
            results["deep"] = await _deep(admin, deep_walks, deep_pages)
            far = await _far_cursor(services.db, fleet.org_id, int(sessions * FAR_FRACTION))
            results["far"] = (
                await _series(admin, itertools.repeat({"cursor": far}), max(10, repeats // 4))
            ).as_dict()
    return results


async def _deep(client: httpx.AsyncClient, walks: int, pages: int) -> dict[str, Any]:
    """Newest first, following ``pages`` cursors from the first page, ``walks`` times."""
    follows: list[float] = []
    last_pages: list[float] = []
    for walk in range(walks + 1):  # the first walk warms up
        _, body = await _timed_get(client, {})
        for page in range(pages):
            cursor = body["next_cursor"]
            if cursor is None:
                raise RuntimeError(f"ran out of pages after {page + 1}")
            elapsed, body = await _timed_get(client, {"cursor": cursor})
            if walk:
                follows.append(elapsed)
                if page == pages - 1:
                    last_pages.append(elapsed)
    return {
        **Latency.of(follows).as_dict(),
        "pages": pages,
        "last_page": Latency.of(last_pages).as_dict(),
    }


async def _far_cursor(db: Database, org_id: str, offset: int) -> str:
    """The cursor the API would hand out after ``offset`` rows (that many pages of following).

    Built from the stored row with the API's own encoder rather than by walking there, which
    would take thousands of requests.
    """
    s = t.sessions
    query = (
        sa.select(s.c.created_at, s.c.id)
        .where(s.c.org_id == org_id)
        .order_by(s.c.created_at.desc(), s.c.id.desc())
        .offset(offset - 1)
        .limit(1)
    )
    async with db.read() as conn:
        row = (await conn.execute(query)).one()
    return encode_cursor(row.created_at, row.id)
