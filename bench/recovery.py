"""The ``recovery`` scenario: takeover after a kill, backfill rate, concurrent live sessions.

Per backend:

* both: the backfill rate (:mod:`bench.backfill`, Corral in-process) and the live-session ladder
  on one ``corral serve`` replica (:mod:`bench.live`; on SQLite only with ``--live-sqlite``);
* PostgreSQL only: the lease takeover after SIGKILL with three replicas (:mod:`bench.takeover`),
  then the live-session ladder on three replicas (clients on one replica, turns pumped by
  another, events fanned out through ``LISTEN/NOTIFY``).

The replicas, the simulated OpenCodes and the mock LLM are real processes started here; the
supervisor stops all of them (process groups) before the database is dropped, also on failure.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import backfill, live, takeover
from bench.cluster import Cluster
from bench.harness import Databases, database
from bench.procs import Supervisor

#: What the takeover replicas run with (the defaults are 15 s and 2 s).
TAKEOVER_SETTINGS = {"CORRAL_LEASE_SECONDS": "3", "CORRAL_LEASE_CHECK_SECONDS": "0.5"}


@dataclass(frozen=True)
class RecoveryConfig:
    takeover_rounds: int
    backfill_steps: int
    backfill_repeats: int
    live: live.LiveConfig
    live_sqlite: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "takeover_rounds": self.takeover_rounds,
            "backfill_steps": self.backfill_steps,
            "backfill_repeats": self.backfill_repeats,
            "live_levels": list(self.live.levels),
            "live_turn_seconds": self.live.turn_seconds,
            "live_rate": self.live.rate,
            "live_sqlite": self.live_sqlite,
        }


def _live_settings(backend: str) -> dict[str, str]:
    pool = "10 + 20 overflow" if backend == "postgres" else "8 + 8 overflow"
    return {
        "CORRAL_SSE_POLL_SECONDS": "1.0 (default)",
        "CORRAL_LEASE_SECONDS": "15 (default)",
        "CORRAL_LEASE_CHECK_SECONDS": "2 (default)",
        "database pool": f"{pool} per replica (fixed in corral.store.db)",
    }


async def _postgres(dbs: Databases, workdir: Path, cfg: RecoveryConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with (
        database(dbs, "postgres", "recovery") as url,
        Supervisor(workdir / "recovery-postgres-logs") as sup,
    ):
        cluster = Cluster(sup, workdir, url)
        cluster.use_local_llm()
        await cluster.add_sims(1)
        for _ in range(3):
            cluster.add_replica(TAKEOVER_SETTINGS)
        await cluster.start(cluster.replicas[0])  # bootstraps the org and prints the admin key
        await asyncio.gather(*(cluster.start(r) for r in cluster.replicas[1:]))
        await cluster.setup()
        if cfg.takeover_rounds > 0:
            out["takeover"] = await takeover.measure(
                cluster, url, cfg.takeover_rounds, TAKEOVER_SETTINGS
            )

        # The live ladders run with the default lease settings.
        for replica in cluster.replicas:
            assert replica.child is not None
            await sup.stop(replica.child)
            for name in TAKEOVER_SETTINGS:
                replica.env.pop(name, None)
        pool = live.Pool()
        try:
            first = cluster.replicas[0]
            await cluster.start(first)
            out["live_1"] = {
                **await live.ladder(cluster, [first], pool, cfg.live),
                "settings": _live_settings("postgres"),
            }
            await asyncio.gather(*(cluster.start(r) for r in cluster.replicas[1:]))
            out["live_3"] = {
                **await live.ladder(cluster, cluster.replicas, pool, cfg.live),
                "settings": _live_settings("postgres"),
            }
        finally:
            await pool.aclose()
    return out


async def _sqlite(dbs: Databases, workdir: Path, cfg: RecoveryConfig) -> dict[str, Any]:
    async with (
        database(dbs, "sqlite", "recovery") as url,
        Supervisor(workdir / "recovery-sqlite-logs") as sup,
    ):
        cluster = Cluster(sup, workdir, url)
        cluster.use_local_llm()
        await cluster.add_sims(1)
        replica = cluster.add_replica({})
        await cluster.start(replica)
        await cluster.setup()
        pool = live.Pool()
        try:
            return {
                "live_1": {
                    **await live.ladder(cluster, [replica], pool, cfg.live),
                    "settings": _live_settings("sqlite"),
                }
            }
        finally:
            await pool.aclose()


async def run(dbs: Databases, backend: str, workdir: Path, cfg: RecoveryConfig) -> dict[str, Any]:
    out: dict[str, Any] = {
        "backfill": await backfill.run(
            dbs, backend, workdir, steps=cfg.backfill_steps, repeats=cfg.backfill_repeats
        )
    }
    if backend == "postgres":
        out.update(await _postgres(dbs, workdir, cfg))
    elif cfg.live_sqlite:
        out.update(await _sqlite(dbs, workdir, cfg))
    return out
