"""Fleet query latency: ``GET /v1/sessions`` over a large stored fleet, through the HTTP API.

Sessions are bulk-inserted with SQLAlchemy Core (see :mod:`bench.seed`): 4 teams x 5 agents,
states mostly ``idle``, ``created_at`` spread over 90 days. Then, with the admin key (which sees
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

from bench.harness import Databases, Latency, corral_server, database, expect
from bench.seed import analyze, insert_sessions, seed_fleet

WARMUP = 5
STATE_FILTER = "failed"  # ~6% of the fleet: the "what broke?" query


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
            results["by_state"] = (
                await _series(admin, itertools.repeat({"state": STATE_FILTER}), repeats)
            ).as_dict()
            results["by_team"] = (await _series(admin, teams, repeats)).as_dict()
            results["deep"] = await _deep(admin, deep_walks, deep_pages)
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
