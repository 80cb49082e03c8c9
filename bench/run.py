"""``python -m bench``: run every scenario on SQLite and PostgreSQL and print one table.

Also writes ``bench/results/latest.json`` (``governance.json`` for the ``governance`` part of a
run, or for ``--only governance`` alone; ``observability.json`` likewise for ``observability``,
``gateway.json`` for ``gateway``, which runs once, not per backend: Corral's gateway on SQLite
against the LiteLLM proxy and a bare forwarder, see :mod:`bench.gateway`).
``--quick`` is a ~3 minute smoke run with small N (two of them ``recovery``, about 35 s
``governance``), plus about 5 minutes per backend for ``adapters``.
PostgreSQL comes from ``CORRAL_TEST_DATABASE_URL`` (default: the loopback ``corral`` role);
every database the run creates there is dropped at the end, also on failure or Ctrl-C. The
live-session ladders of ``recovery`` also start a PostgreSQL server of their own
(:mod:`bench.pg_server`), removed when they end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python bench/run.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from bench import (
    adapters,
    create,
    fleet,
    gateway,
    gateway_report,
    governance,
    ingest,
    observability,
    recovery,
    runtimes,
)
from bench.harness import BACKENDS, Databases, machine_info, postgres_info
from bench.live import LiveConfig

RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = ("create", "ingest", "fleet", "recovery", "adapters", "governance", "observability",
             "gateway")  # fmt: skip
#: Scenarios that run once per run rather than once per backend.
ONCE = ("gateway",)
LABELS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
CONFIG_KEYS = ("sessions", "creates", "concurrent_creates", "workers", "turns", "ingest_sessions",
               "repeats", "deep_walks", "takeover_rounds", "backfill_steps", "backfill_repeats",
               "live_levels", "live_seconds", "live_rate", "live_sqlite", "adapters_sessions",
               "adapters_target", "adapters_interval", "adapters_hold", "adapters_kinds",
               "governance_calls", "governance_seconds", "governance_concurrency",
               "observability_appends", "observability_calls", "observability_turns",
               "gateway_requests", "gateway_seconds", "gateway_levels",
               "gateway_stream_concurrency", "gateway_proxies", "gateway_delay_ms")  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small N: a ~1.5 minute smoke run")
    parser.add_argument("--sessions", type=int, help="stored sessions for the fleet queries")
    parser.add_argument("--creates", type=int, help="sequential session creates")
    parser.add_argument("--concurrent-creates", type=int, help="session creates, concurrent run")
    parser.add_argument("--workers", type=int, default=8, help="concurrency of that run")
    parser.add_argument("--turns", type=int, help="trace replays (turns) per ingest variant")
    parser.add_argument("--ingest-sessions", type=int, default=8, help="concurrent ingest")
    parser.add_argument("--repeats", type=int, help="requests per fleet query shape")
    parser.add_argument("--deep-walks", type=int, help="walks of 20 cursors for the deep page")
    parser.add_argument("--takeover-rounds", type=int, help="SIGKILLs of a turn's owner")
    parser.add_argument("--backfill-steps", type=int, help="tool steps in the backfilled turn")
    parser.add_argument("--backfill-repeats", type=int, help="backfills per variant")
    parser.add_argument(
        "--live-levels", help="comma list of concurrent live sessions, tried in order"
    )
    parser.add_argument(
        "--live-seconds", type=float, help="live turn length beyond the time to start them all"
    )
    parser.add_argument(
        "--live-rate", type=float, default=2.0, help="text deltas per second per live session"
    )
    parser.add_argument(
        "--live-sqlite",
        action="store_true",
        help="also run the live-session ladder on SQLite (one replica; adds about a minute)",
    )
    parser.add_argument("--adapters-sessions", type=int, help="live sessions per runtime kind")
    parser.add_argument("--adapters-target", type=int, help="live sessions over all kinds at once")
    parser.add_argument(
        "--adapters-interval", type=float, default=5.0, help="seconds between a live turn's deltas"
    )
    parser.add_argument("--adapters-hold", type=float, help="seconds live sessions are watched")
    parser.add_argument(
        "--adapters-kinds", default=",".join(runtimes.ORDER), help="runtime kinds for adapters"
    )
    parser.add_argument(
        "--governance-calls", type=int, help="evaluate() calls per act, and decide() calls"
    )
    parser.add_argument(
        "--governance-seconds",
        type=float,
        help="length of the ledger throughput run (and of decide() with settlements)",
    )
    parser.add_argument(
        "--governance-concurrency", type=int, default=64, help="coroutines in the ledger run"
    )
    parser.add_argument(
        "--observability-appends", type=int, help="audit appends per variant (after warm-up)"
    )
    parser.add_argument(
        "--observability-calls", type=int, help="decide() calls with and without listeners"
    )
    parser.add_argument(
        "--observability-turns", type=int, help="turns replayed through the telemetry tap"
    )
    parser.add_argument(
        "--gateway-requests", type=int, help="timed c=1 requests per gateway latency measurement"
    )
    parser.add_argument("--gateway-seconds", type=float, help="length of each gateway load run")
    parser.add_argument(
        "--gateway-levels", default="1,16,64,256", help="comma list of gateway concurrencies"
    )
    parser.add_argument(
        "--gateway-stream-concurrency", type=int, default=64, help="concurrent gateway streams"
    )
    parser.add_argument(
        "--gateway-delay-ms",
        type=float,
        default=0.0,
        help="the mock upstream's delay before a reply and between stream chunks",
    )
    parser.add_argument(
        "--gateway-proxies",
        default=",".join(gateway.PROXIES),
        help="comma list of: " + ", ".join(gateway.PROXIES),
    )
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help="comma list of: sqlite, postgres"
    )
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help="comma list of: " + ", ".join(SCENARIOS),
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop (uvicorn picks uvloop in production when it is installed)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="JSON report (default bench/results/latest.json; governance.json for "
        "--only governance, observability.json for --only observability, gateway.json for "
        "--only gateway)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "sessions": 10_000 if quick else 100_000,
        "creates": 60 if quick else 300,
        "concurrent_creates": 64 if quick else 304,
        "turns": 40 if quick else 208,
        "repeats": 40 if quick else 200,
        "deep_walks": 2 if quick else 10,
        "takeover_rounds": 4 if quick else 10,
        "backfill_steps": 50 if quick else 100,
        "backfill_repeats": 3 if quick else 5,
        "live_levels": "10,25" if quick else "100,250,500,1000",
        "live_seconds": 6.0 if quick else 10.0,
        "adapters_sessions": 20 if quick else 100,
        "adapters_target": 140 if quick else 1000,
        "adapters_hold": 10.0 if quick else 20.0,
        "governance_calls": 20_000 if quick else 30_000,
        "governance_seconds": 5.0 if quick else 8.0,
        "observability_appends": 1_000 if quick else 3_000,
        "observability_calls": 4_000 if quick else 20_000,
        "observability_turns": 100 if quick else 400,
        "gateway_requests": 100 if quick else 300,
        "gateway_seconds": 2.0 if quick else 5.0,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.live_levels = [int(n) for n in str(args.live_levels).split(",") if n.strip()]
    args.adapters_kinds = [k.strip() for k in args.adapters_kinds.split(",") if k.strip()]
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.gateway_levels = [int(n) for n in str(args.gateway_levels).split(",") if n.strip()]
    args.gateway_proxies = [p.strip() for p in args.gateway_proxies.split(",") if p.strip()]
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    args.output_given = args.output is not None
    if args.output is None:
        alone = {("governance",): "governance.json", ("observability",): "observability.json",
                 ("gateway",): "gateway.json"}  # fmt: skip
        args.output = RESULTS / alone.get(tuple(args.only), "latest.json")
    for backend in args.backends:
        if backend not in BACKENDS:
            parser.error(f"unknown backend {backend!r}")
    for scenario in args.only:
        if scenario not in SCENARIOS:
            parser.error(f"unknown scenario {scenario!r}")
    for kind in args.adapters_kinds:
        if kind not in runtimes.ORDER:
            parser.error(f"unknown runtime kind {kind!r}")
    for proxy in args.gateway_proxies:
        if proxy not in gateway.PROXIES:
            parser.error(f"unknown gateway proxy {proxy!r}")
    return args


async def _run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="corral-bench-"))
    dbs = Databases(workdir)
    report: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": args.quick,
        "scenarios": [s for s in SCENARIOS if s in args.only],
        "config": {k: getattr(args, k) for k in CONFIG_KEYS},
        "machine": {**machine_info(args.loop), "load_average_start": _load()},
        "results": {backend: {} for backend in args.backends},
        "errors": {},
        "skipped": {},
    }
    backends = list(args.backends)
    if all(s in ONCE for s in args.only):  # no per-backend scenario: no backend to check
        report["results"], backends = {}, []
    try:
        if "postgres" in backends:
            error = await dbs.check_postgres()
            if error is None:
                report["machine"]["postgres"] = await postgres_info()
            else:
                console.print(f"[yellow]skipping PostgreSQL: {error}[/yellow]")
                report["skipped"]["postgres"] = error
                report["results"].pop("postgres")
                backends.remove("postgres")
        jobs: dict[str, Callable[[str], Coroutine[Any, Any, dict[str, Any]]]] = {
            "create": lambda b: create.run(
                dbs, b, workdir, sequential=args.creates,
                concurrent=args.concurrent_creates, workers=args.workers,
            ),
            "ingest": lambda b: ingest.run(
                dbs, b, workdir, turns=args.turns, concurrency=args.ingest_sessions
            ),
            "fleet": lambda b: fleet.run(
                dbs, b, workdir, sessions=args.sessions, repeats=args.repeats,
                deep_walks=args.deep_walks,
            ),
            "recovery": lambda b: recovery.run(dbs, b, workdir, _recovery_config(args)),
            "adapters": lambda b: adapters.run(dbs, b, workdir, _adapters_config(args)),
            "governance": lambda b: governance.run(dbs, b, workdir, _governance_config(args)),
            "observability": lambda b: observability.run(
                dbs, b, workdir, _observability_config(args)
            ),
        }  # fmt: skip
        for scenario in SCENARIOS:
            if scenario not in args.only or scenario in ONCE:
                continue
            for backend in backends:
                await _step(console, report, scenario, backend, jobs[scenario])
        if "gateway" in args.only:
            await _gateway_step(console, report, workdir, args)
    finally:
        with console.status("dropping benchmark databases"):
            try:
                await dbs.aclose()
            except Exception as exc:
                report["errors"]["cleanup"] = str(exc)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    report["machine"]["load_average_end"] = _load()
    return report


def _recovery_config(args: argparse.Namespace) -> recovery.RecoveryConfig:
    return recovery.RecoveryConfig(
        takeover_rounds=args.takeover_rounds,
        backfill_steps=args.backfill_steps,
        backfill_repeats=args.backfill_repeats,
        live=LiveConfig(tuple(args.live_levels), args.live_seconds, args.live_rate),
        live_sqlite=args.live_sqlite,
    )


def _adapters_config(args: argparse.Namespace) -> adapters.AdaptersConfig:
    return adapters.AdaptersConfig(
        throughput_sessions=4 if args.quick else 8,
        throughput_words=200 if args.quick else 300,
        memory_sessions=args.adapters_sessions,
        target_sessions=args.adapters_target,
        interval=args.adapters_interval,
        hold=args.adapters_hold,
        kinds=tuple(args.adapters_kinds),
    )


def _governance_config(args: argparse.Namespace) -> governance.GovernanceConfig:
    return governance.GovernanceConfig(
        calls=args.governance_calls,
        seconds=args.governance_seconds,
        concurrency=args.governance_concurrency,
    )


def _observability_config(args: argparse.Namespace) -> observability.ObservabilityConfig:
    return observability.ObservabilityConfig(
        appends=args.observability_appends,
        calls=args.observability_calls,
        turns=args.observability_turns,
        recorded_turns=6 if args.quick else 20,
    )


def _gateway_config(args: argparse.Namespace) -> gateway.GatewayConfig:
    return gateway.GatewayConfig(
        requests=args.gateway_requests,
        warmup=20 if args.quick else 50,
        seconds=args.gateway_seconds,
        warmup_s=0.5 if args.quick else 1.0,
        levels=tuple(args.gateway_levels),
        stream_concurrency=args.gateway_stream_concurrency,
        proxies=tuple(args.gateway_proxies),
        delay_ms=args.gateway_delay_ms,
    )


async def _gateway_step(
    console: Console, report: dict[str, Any], workdir: Path, args: argparse.Namespace
) -> None:
    """The gateway scenario, once (its Corral is on SQLite, whatever ``--backends`` says)."""
    started = time.perf_counter()
    with console.status("gateway: direct, " + ", ".join(args.gateway_proxies)):
        try:
            report["gateway"] = await gateway.run(workdir, _gateway_config(args))
        except Exception as exc:
            report["errors"]["gateway"] = f"{type(exc).__name__}: {exc}"
            console.print("[red]gateway failed:[/red]")
            console.print(traceback.format_exc(), markup=False, highlight=False)
            return
    console.print(f"  gateway: {time.perf_counter() - started:.1f} s")


def _load() -> list[float] | None:
    with contextlib.suppress(OSError, AttributeError):
        return [round(x, 2) for x in os.getloadavg()]
    return None


async def _step(
    console: Console,
    report: dict[str, Any],
    scenario: str,
    backend: str,
    job: Callable[[str], Awaitable[dict[str, Any]]],
) -> None:
    started = time.perf_counter()
    with console.status(f"{scenario} on {LABELS[backend]}"):
        try:
            report["results"][backend][scenario] = await job(backend)
        except Exception as exc:
            report["errors"][f"{backend}.{scenario}"] = f"{type(exc).__name__}: {exc}"
            console.print(f"[red]{scenario} on {LABELS[backend]} failed:[/red]")
            console.print(traceback.format_exc(), markup=False, highlight=False)
            return
    console.print(f"  {scenario} on {LABELS[backend]}: {time.perf_counter() - started:.1f} s")


# -- the table ------------------------------------------------------------------------------


def _get(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _num(value: Any, digits: int = 1) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def _lat(node: Any) -> str:
    if not isinstance(node, dict):
        return "-"
    return f"{_num(node.get('p50'), 2)} / {_num(node.get('p99'), 2)}"


def _rate(node: Any) -> str:
    if not isinstance(node, dict):
        return "-"
    return f"{_num(node.get('events_per_s'), 0)} ({_num(node.get('transactions_per_s'), 0)} tx/s)"


Row = tuple[str, Callable[[dict[str, Any]], str]]


def rows(report: dict[str, Any]) -> list[Row]:
    """The table's rows for the scenarios that ran (all of them for older reports)."""
    ran = report.get("scenarios", SCENARIOS)
    out = [row for scenario, row in _base_rows(report) if scenario in ran]
    if "recovery" in ran:
        out += _recovery_rows(report)
    if "adapters" in ran:
        out += adapters.table_rows(report)
    if "governance" in ran:
        out += governance.table_rows(report)
    if "observability" in ran:
        out += observability.table_rows(report)
    return out


def _base_rows(report: dict[str, Any]) -> list[tuple[str, Row]]:
    tagged: list[tuple[str, Row]] = []
    for row in _rows_before_recovery(report):
        label = row[0]
        scenario = ("create" if label.startswith("Session create") else
                    "ingest" if label.startswith("Event ingest") else "fleet")  # fmt: skip
        tagged.append((scenario, row))
    return tagged


def _live(node: Any) -> str:
    """Largest passing level, with its p99s: recorded→client / runtime→client."""
    if not isinstance(node, dict) or "levels" not in node:
        return "-"
    best = node.get("max_sessions_passing")
    levels = node["levels"]
    if best is None:
        first = levels[0] if levels else {}
        return f"none of {first.get('sessions', '?')}"
    level = next(lv for lv in levels if lv["sessions"] == best)
    r2c = level["recorded_to_client_ms"]["p99"]
    rt2c = level["runtime_to_client_ms"]["p99"]
    cell = f"{best} (p99 {_num(r2c, 0)} / {_num(rt2c, 0)} ms)"
    below = [lv for lv in levels if lv["sessions"] < best and not lv["passed"]]
    for lv in below:  # a level that failed although a larger one passed: say so, and why
        stalls = lv.get("postgres_commit_stalls_ms") or []
        why = f", PostgreSQL commit stalls up to {_num(max(stalls), 0)} ms" if stalls else ""
        p99 = _num(lv["runtime_to_client_ms"]["p99"], 0)
        cell += f"; {lv['sessions']} failed (p99 {p99} ms{why})"
    return cell


def _recovery_rows(report: dict[str, Any]) -> list[Row]:
    cfg = report["config"]
    lease = recovery.TAKEOVER_SETTINGS
    terms = (
        f"lease {lease['CORRAL_LEASE_SECONDS']} s, check {lease['CORRAL_LEASE_CHECK_SECONDS']} s"
    )
    steps = cfg["backfill_steps"]
    rate = _num(cfg["live_rate"], 0)

    def backfill(r: dict[str, Any]) -> str:
        node = _get(r, "recovery.backfill.large_turn")
        if not isinstance(node, dict):
            return "-"
        ms = node["reconcile_ms"]["p50"]
        return (
            f"{_num(node['events_per_s'], 0)} ({node['events_per_backfill']} in {_num(ms, 0)} ms)"
        )

    return [
        (f"Takeover after SIGKILL ({terms}) p50 / p99 s",
         lambda r: _lat(_get(r, "recovery.takeover.takeover_s"))),
        ("Takeover: first event recorded after the kill p50 / p99 s",
         lambda r: _lat(_get(r, "recovery.takeover.next_event_s"))),
        ("Takeover: the 6 s turn completed, after the kill p50 / p99 s",
         lambda r: _lat(_get(r, "recovery.takeover.completed_after_kill_s"))),
        (f"Backfill of a {steps}-tool-step turn: events/s (events in p50 time)", backfill),
        ("Backfill of one real tool turn p50 / p99 ms",
         lambda r: _lat(_get(r, "recovery.backfill.real_turn.reconcile_ms"))),
        (f"Live, 1 replica, {rate} deltas/s each: most sessions at p99 < 50 ms",
         lambda r: _live(_get(r, "recovery.live_1"))),
        (f"Live, 3 replicas (NOTIFY), {rate} deltas/s each: most at p99 < 50 ms",
         lambda r: _live(_get(r, "recovery.live_3"))),
        ("Live, 1 replica, on the machine's shared PostgreSQL as configured there",
         lambda r: _live(_get(r, "recovery.live_1_shared"))),
        ("Live: runtime deltas lost, 1 replica / 3 replicas",
         lambda r: f"{_lost(_get(r, 'recovery.live_1'))} / {_lost(_get(r, 'recovery.live_3'))}"),
    ]  # fmt: skip


def _lost(node: Any) -> str:
    if not isinstance(node, dict) or "levels" not in node:
        return "-"
    return str(sum(int(level.get("lost_deltas", 0)) for level in node["levels"]))


def _rows_before_recovery(report: dict[str, Any]) -> list[Row]:
    cfg = report["config"]
    workers = cfg["workers"]
    n_sessions = f"{cfg['sessions']:,}"
    return [
        (f"Session create, sequential (n={cfg['creates']}) p50 / p99 ms",
         lambda r: _lat(_get(r, "create.sequential"))),
        (f"Session create, {workers} concurrent (n={cfg['concurrent_creates']}) p50 / p99 ms",
         lambda r: _lat(_get(r, "create.concurrent"))),
        (f"Session create, {workers} concurrent: creates/s",
         lambda r: _num(_get(r, "create.concurrent.throughput_per_s"))),
        ("Event ingest, 1 tx per native event: events/s",
         lambda r: _rate(_get(r, "ingest.per_event"))),
        ("Event ingest, 1 tx per turn (batched): events/s",
         lambda r: _rate(_get(r, "ingest.batched"))),
        (f"Event ingest, {cfg['ingest_sessions']} sessions at once, 1 tx per event: events/s",
         lambda r: _rate(_get(r, "ingest.per_event_concurrent"))),
        (f"Fleet: bulk insert of {n_sessions} sessions (s)",
         lambda r: _num(_get(r, "fleet.load_seconds"))),
        (f"Fleet over {n_sessions}: newest first p50 / p99 ms",
         lambda r: _lat(_get(r, "fleet.newest"))),
        ("Fleet: by agent (~5% of sessions each) p50 / p99 ms",
         lambda r: _lat(_get(r, "fleet.by_agent"))),
        (f"Fleet: by an agent with {fleet.SMALL_AGENT_SESSIONS} sessions p50 / p99 ms",
         lambda r: _lat(_get(r, "fleet.by_small_agent"))),
        (f"Fleet: by state={fleet.STATE_FILTER} p50 / p99 ms",
         lambda r: _lat(_get(r, "fleet.by_state"))),
        ("Fleet: by team p50 / p99 ms", lambda r: _lat(_get(r, "fleet.by_team"))),
        ("Fleet: cursor pages 2-21 p50 / p99 ms", lambda r: _lat(_get(r, "fleet.deep"))),
        ("Fleet: page 21 alone p50 / p99 ms", lambda r: _lat(_get(r, "fleet.deep.last_page"))),
        (f"Fleet: page after row {_deep_row(cfg['sessions']):,} (cursor) p50 / p99 ms",
         lambda r: _lat(_get(r, "fleet.far"))),
    ]  # fmt: skip


def _deep_row(sessions: int) -> int:
    return int(sessions * fleet.FAR_FRACTION)


def render(report: dict[str, Any], console: Console) -> None:
    machine = report["machine"]
    pg = machine.get("postgres", {})
    console.print(
        f"[bold]Machine[/bold]: {machine['cpu_count']} CPUs ({machine['cpu_model']}), "
        f"Python {machine['python']} ({machine['event_loop']}), SQLite {machine['sqlite']}, "
        f"PostgreSQL {pg.get('server_version', 'n/a')}"
        + (
            f" (fsync={pg['fsync']}, synchronous_commit={pg['synchronous_commit']}, "
            f"shared_buffers={pg['shared_buffers']})"
            if pg
            else ""
        )
    )
    backends = list(report["results"])
    table = Table(title="Corral benchmark" + (" (--quick)" if report["quick"] else ""))
    table.add_column("Measurement")
    for backend in backends:
        table.add_column(LABELS[backend], justify="right")
    for label, cell in rows(report):
        table.add_row(label, *(cell(report["results"][b]) for b in backends))
    if table.row_count:
        console.print(table)
    gateway_report.render(report, console)
    console.print(
        f"load average (1, 5, 15 min) at start {machine.get('load_average_start')}, "
        f"at end {machine.get('load_average_end')}: other work on the machine skews the numbers"
    )
    for backend, why in report["skipped"].items():
        console.print(f"[yellow]{LABELS[backend]} skipped: {why}[/yellow]")
    for where, error in report["errors"].items():
        console.print(f"[red]{where}: {error}[/red]")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    # Rich assumes 80 columns when output is not a terminal; the table wants more.
    console = Console() if sys.stdout.isatty() else Console(width=120)
    runner: Callable[[Coroutine[Any, Any, dict[str, Any]]], dict[str, Any]] = asyncio.run
    if args.loop == "uvloop":
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            args.loop = "asyncio"

    async def guarded() -> dict[str, Any]:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):  # SIGTERM: clean up like Ctrl-C does
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        return await _run(args, console)

    started = time.perf_counter()
    try:
        report = runner(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print("[yellow]interrupted; benchmark databases were dropped[/yellow]")
        sys.exit(130)
    report["seconds"] = round(time.perf_counter() - started, 1)
    render(report, console)
    gov = RESULTS / "governance.json"
    obs = RESULTS / "observability.json"
    gw = RESULTS / "gateway.json"
    written = [args.output]
    if args.output == gov:  # --only governance: the governance report alone
        governance.save(report, gov)
    elif args.output == obs:  # --only observability: that report alone
        observability.save(report, obs)
    elif args.output == gw:  # --only gateway: that report alone
        gateway_report.save(report, gw)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        if "governance" in report["scenarios"] and not args.output_given:
            governance.save(report, gov)
            written.append(gov)
        if "observability" in report["scenarios"] and not args.output_given:
            observability.save(report, obs)
            written.append(obs)
        if "gateway" in report["scenarios"] and not args.output_given:
            gateway_report.save(report, gw)
            written.append(gw)
    console.print(f"total {report['seconds']} s; wrote {', '.join(map(str, written))}")
    if report["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
