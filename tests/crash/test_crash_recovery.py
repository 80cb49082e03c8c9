"""Sessions survive crashes: SIGKILL ``corral serve`` mid-turn, start it again, check everything.

Each kill lands at a randomized point of one of four scenarios (mid-stream, between writing an
input and the runtime acknowledging it, while an approval is pending, right after a cancel)
with other sessions in flight beside it. After the restart every affected session must settle,
and its whole event log must match the runtime's own record: nothing lost, nothing duplicated,
``seq`` gap-free, the state right, and an SSE client resuming with ``Last-Event-ID`` must get
exactly the events after it. See :mod:`tests.crash.scenarios` and :mod:`tests.crash.invariants`.

Knobs (environment):

* ``CORRAL_CRASH_SEED``: the seed of the kill points (printed at the start; random otherwise);
* ``CORRAL_CRASH_KILLS`` / ``CORRAL_CRASH_PG_KILLS``: kills per run on SQLite (20) and PostgreSQL (6);
* ``CORRAL_SOAK_KILLS``: run the ``soak`` tests with that many kills per database
  (``CORRAL_SOAK_KILLS=500 pytest tests/crash -m soak``; without it they skip).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.crash.harness import Cluster, Processes, setup_fleet
from tests.crash.scenarios import CrashRun, Failure, failure_table, run_rounds
from tests.support.databases import PostgresFactory, sqlite_url

SEED = int(os.environ.get("CORRAL_CRASH_SEED") or random.SystemRandom().randrange(1_000_000))
KILLS = {
    "sqlite": int(os.environ.get("CORRAL_CRASH_KILLS", "20")),
    "postgres": int(os.environ.get("CORRAL_CRASH_PG_KILLS", "6")),
}
PROMPT_DELAY = 1.0  # the late-acknowledging simulators answer prompt_async after this long


async def crash_run(
    backend: str,
    kills: int,
    workdir: Path,
    postgres: PostgresFactory,
    say: Callable[[str], None],
) -> list[Failure]:
    if backend == "postgres":
        if postgres.unavailable:
            pytest.fail(postgres.unavailable)
        database_url = await postgres.new_database()
    else:
        database_url = sqlite_url(workdir)
    say(f"\n[{backend}] crash test: {kills} kills, CORRAL_CRASH_SEED={SEED}, logs in {workdir}")
    procs = Processes(workdir)
    try:
        cluster = Cluster(workdir, database_url, procs)
        await cluster.start_runtimes(PROMPT_DELAY)
        await cluster.start_corral()
        key, agents = await setup_fleet(cluster)
        run = CrashRun(cluster, key, agents, backend=backend, seed=SEED)
        began = time.monotonic()
        try:
            failures = await run_rounds(run, kills, say)
        finally:
            await run.aclose()
        say(
            f"[{backend}] coverage: "
            + ", ".join(f"{k} {n}" for k, n in sorted(run.coverage.items()))
        )
        say(
            f"[{backend}] {len(cluster.kill_times)} SIGKILLs over {kills} rounds, "
            f"{len(run.sessions)} sessions, {time.monotonic() - began:.0f}s"
            + (
                f"; failing sessions' logs and runtime records: {workdir / 'observed'}"
                if failures
                else ""
            )
        )
        return failures
    finally:
        procs.stop_all()
        if backend == "postgres":
            await postgres.drop(database_url)
        leaked = [f"{p.name} (pid {p.popen.pid})" for p in procs.procs if p.alive()]
        assert not leaked, f"processes left running: {leaked}"


def _reporter(capsys: pytest.CaptureFixture[str]) -> Callable[[str], None]:
    def say(line: str) -> None:
        with capsys.disabled():
            print(line, flush=True)

    return say


def _verdict(failures: list[Failure], workdir: Path, say: Callable[[str], None]) -> None:
    if failures:
        table = failure_table(failures)
        say(f"\n{len(failures)} difference(s) (CORRAL_CRASH_SEED={SEED}):\n{table}")
        pytest.fail(
            f"{len(failures)} crash-recovery difference(s) with CORRAL_CRASH_SEED={SEED} "
            f"(each failing session's log and runtime record: {workdir / 'observed'}):\n{table}",
            pytrace=False,
        )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_sessions_survive_sigkill(
    backend: str, tmp_path: Path, postgres: PostgresFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    say = _reporter(capsys)
    _verdict(await crash_run(backend, KILLS[backend], tmp_path, postgres, say), tmp_path, say)


@pytest.mark.soak
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_sessions_survive_sigkill_soak(
    backend: str, tmp_path: Path, postgres: PostgresFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    kills = int(os.environ.get("CORRAL_SOAK_KILLS") or 0)
    if kills <= 0:
        pytest.skip("soak: set CORRAL_SOAK_KILLS (e.g. 500) to run")
    say = _reporter(capsys)
    _verdict(await crash_run(backend, kills, tmp_path, postgres, say), tmp_path, say)
