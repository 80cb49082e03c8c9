"""The live bench's side measurements: PostgreSQL's own commit latency, and how a ladder
with a failed level below a passing one is reported."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
from bench.harness import asyncpg_dsn
from bench.probes import commit_latency

from bench import run
from tests.support.databases import PostgresFactory


async def test_commit_probe_samples_postgres_and_leaves_no_rows(
    postgres: PostgresFactory,
) -> None:
    assert postgres.unavailable is None, postgres.unavailable
    url = await postgres.new_database()
    try:
        report = await commit_latency(url, time.time() + 0.4)
        latency = report["postgres_commit_ms"]
        assert latency["n"] >= 4
        assert 0 < latency["p50"] <= latency["max"]
        assert all(s >= 50.0 for s in report["postgres_commit_stalls_ms"])
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            assert await conn.fetchval("SELECT count(*) FROM bench_commit_probe") == 0
        finally:
            await conn.close()
    finally:
        await postgres.drop(url)


async def test_commit_probe_skips_sqlite() -> None:
    assert await commit_latency("sqlite+aiosqlite:///x.db", time.time() + 1) == {}


def _level(n: int, passed: bool, p99: float, stalls: list[float] | None = None) -> dict[str, Any]:
    return {
        "sessions": n,
        "passed": passed,
        "recorded_to_client_ms": {"p99": p99 / 2},
        "runtime_to_client_ms": {"p99": p99},
        "postgres_commit_stalls_ms": stalls or [],
    }


def test_a_failed_level_below_the_best_is_named_with_its_stalls() -> None:
    node = {
        "max_sessions_passing": 1000,
        "levels": [
            _level(250, False, 90.0, [112.0, 239.4]),
            _level(500, True, 20.0),
            _level(750, False, 60.0),
            _level(1000, True, 40.0),
        ],
    }
    cell = run._live(node)
    assert cell.startswith("1000 (p99 20 / 40 ms)")
    assert "250 failed (p99 90 ms, PostgreSQL commit stalls up to 239 ms)" in cell
    assert "750 failed (p99 60 ms)" in cell


def test_no_passing_level_says_so() -> None:
    node = {"max_sessions_passing": None, "levels": [_level(250, False, 90.0)]}
    assert run._live(node) == "none of 250"
