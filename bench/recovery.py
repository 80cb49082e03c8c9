"""The ``recovery`` scenario: takeover after a kill, backfill rate, concurrent live sessions.

Per backend:

* both: the backfill rate (:mod:`bench.backfill`, Corral in-process) and the live-session ladder
  on one ``corral serve`` replica (:mod:`bench.live`; on SQLite only with ``--live-sqlite``);
* PostgreSQL only: the lease takeover after SIGKILL with three replicas (:mod:`bench.takeover`),
  and the live-session ladder on three replicas (clients on one replica, turns pumped by
  another, events fanned out through ``LISTEN/NOTIFY``).

On PostgreSQL the ladders run on a server of the benchmark's own, configured as
``docs/operations.md`` advises for live load (:mod:`bench.pg_server`; ``live_1``, ``live_3``),
and the one-replica ladder also on the machine's shared server as it is configured
(``live_1_shared``): on default settings its timed checkpoints stall commits, which the report
then shows. Without the means to start a server (no binaries, no ``postgres`` user to run it as
when root) both ladders run on the shared one, and ``live_postgres_note`` says why.

The replicas, the simulated OpenCodes and the mock LLM are real processes started here; the
supervisor stops all of them (process groups) before the database is dropped, also on failure.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import backfill, live, pg_server, takeover
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
    async with pg_server.dedicated() as server:
        dedicated = server if isinstance(server, pg_server.PgServer) else None
        async with (
            database(dbs, "postgres", "recovery") as url,
            Supervisor(workdir / "recovery-postgres-logs") as sup,
        ):
            cluster = await _cluster(sup, workdir, url, 3, TAKEOVER_SETTINGS)
            await cluster.start(cluster.replicas[0])  # bootstraps the org, prints the admin key
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
            if dedicated is not None:
                # First, while the shared server is quiet: dropping its database after a
                # ladder flushes and deletes hundreds of megabytes, and the disk stalls.
                out.update(await _on_dedicated(dedicated, workdir, cfg))
                await dedicated.stop()
            shared = await _ladders(cluster, cfg, three=dedicated is None, postgres=_SHARED)
            if dedicated is None:
                out.update(shared)
                out["live_postgres_note"] = str(server)
            else:
                out["live_1_shared"] = shared["live_1"]
    return out


#: How the machine's shared PostgreSQL is described in the report (its settings are its own).
_SHARED = {"server": "shared", "settings": "as configured on the machine"}


async def _on_dedicated(
    server: pg_server.PgServer, workdir: Path, cfg: RecoveryConfig
) -> dict[str, Any]:
    """Both ladders on the benchmark's own PostgreSQL (see :mod:`bench.pg_server`)."""
    home = workdir / "live-dedicated"
    home.mkdir(exist_ok=True)
    # Not dropped afterwards: the whole server goes (see ``PgServer.stop``).
    url = await Databases(home, server.admin_url).new("postgres", "live")
    async with Supervisor(home / "logs") as sup:
        cluster = await _cluster(sup, home, url, 3)
        described = {"server": "dedicated", "settings": server.settings}
        return await _ladders(cluster, cfg, three=True, postgres=described)


async def _ladders(
    cluster: Cluster, cfg: RecoveryConfig, *, three: bool, postgres: dict[str, Any] | None
) -> dict[str, Any]:
    """The ladder on the cluster's first replica, then (``three``) on all three of them; the
    replicas are stopped on entry and left running. ``postgres``: which server (None: SQLite)."""
    out: dict[str, Any] = {}
    about: dict[str, Any] = {"settings": _live_settings("postgres" if postgres else "sqlite")}
    if postgres is not None:
        about["postgres"] = postgres
    pool = live.Pool()
    try:
        first = cluster.replicas[0]
        await cluster.start(first)
        if cluster.user_key is None:
            await cluster.setup()
        out["live_1"] = {**await live.ladder(cluster, [first], pool, cfg.live), **about}
        if three:
            await asyncio.gather(*(cluster.start(r) for r in cluster.replicas[1:]))
            out["live_3"] = {
                **await live.ladder(cluster, cluster.replicas, pool, cfg.live),
                **about,
            }
    finally:
        await pool.aclose()
    return out


async def _sqlite(dbs: Databases, workdir: Path, cfg: RecoveryConfig) -> dict[str, Any]:
    async with (
        database(dbs, "sqlite", "recovery") as url,
        Supervisor(workdir / "recovery-sqlite-logs") as sup,
    ):
        cluster = await _cluster(sup, workdir, url, 1)
        return await _ladders(cluster, cfg, three=False, postgres=None)


async def _cluster(
    sup: Supervisor, workdir: Path, url: str, replicas: int, settings: dict[str, str] | None = None
) -> Cluster:
    """One simulated OpenCode answering the LLM's script itself, and ``replicas`` not started."""
    cluster = Cluster(sup, workdir, url)
    cluster.use_local_llm()
    await cluster.add_sims(1)
    for _ in range(replicas):
        cluster.add_replica(settings or {})
    return cluster


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
