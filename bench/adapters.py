"""The ``adapters`` scenario: every runtime adapter's pump at full speed, and memory per live session.

Corral runs as a real ``corral serve`` process (a fresh database per phase); the runtimes
(:mod:`bench.runtimes`) and the mock LLM run in their own processes, so Corral's CPU and RSS are
read from ``/proc`` for its process alone. Everything goes through the public HTTP API, so each
adapter's subscription, pump, mapper and the recorder are on the path.

1. **Pump throughput**, per kind, one Corral process for all kinds: K sessions (after one
   warm-up turn) are sent at once a prompt the mock LLM answers with W words, one chunk per word,
   as fast as it can (``[[slow:0]]`` marks the prompt as scripted, which OpenClaw needs). Events
   are the rows recorded (``last_seq`` growth); the time runs from the first post to the ``ts``
   of the last event recorded; Corral CPU is its process's user + system time in between.
   OpenClaw's gateway coalesces deltas (one per 150 ms at most), so it gets 8 x K sessions and
   a reply paced over 10 s instead: its fastest rate.
2. **Memory per live session**, per kind, a fresh Corral process each: after 16 concurrent
   warm-up turns (pools at working size) and the pump's grace period, RSS is the baseline; then N sessions are created, each gets an
   open ``GET /v1/sessions/{id}/stream``, and each is sent a turn the mock LLM streams one
   chunk every ``interval`` seconds for minutes. Once every stream has received a delta, RSS is
   sampled every second for ``hold`` seconds; (max - baseline) / N is the cost of one session
   with an open stream and a live pump. The turns are cancelled at the end.
3. **The target**: the same with ``target`` sessions spread evenly over all kinds in one Corral
   process (1,000: RSS under 500 MB), and whether every stream kept receiving: a stream passes
   if it got deltas throughout the hold window, never more than ``2.5 x interval`` apart.
4. **After a long reply**: N/2 sessions of the first kind, each sent a 300-word reply at full
   speed (more events than the stream hub keeps per followed session); once the turns and
   their pumps are over, (RSS - baseline) / (N/2), with every session's stream open and, in a
   second fresh Corral, with no stream at all. The baseline is taken after a first such burst
   on other sessions: the first burst raises RSS by a high-water mark later bursts reuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cluster import api_client, call
from bench.harness import Databases
from bench.procs import Child, Supervisor, free_port, wait_http
from bench.runtimes import (
    KINDS,
    ORDER,
    PUMP_GRACE,
    PYTHON,
    SESSIONS_PER_RUNTIME,
    Corral,
    LiveStream,
    Runtimes,
    cancel_all,
    clients,
    close_streams,
    corral_process,
    create_sessions,
    fast_prompt,
    group_cpu,
    open_streams,
    post_messages,
    slow_prompt,
    status_kb,
    stream_flow,
    unavailable,
    wait_idle,
    warm_up,
)
from bench.streams import parse_ts

TAIL_WORDS = 300  # a reply longer than the stream hub's tail (256 events)
PACED_FACTOR = 8  # more sessions for a runtime that coalesces its deltas
TARGET_MB = 500.0


@dataclass(frozen=True)
class AdaptersConfig:
    throughput_sessions: int = 8
    throughput_words: int = 300
    memory_sessions: int = 100  # per kind
    target_sessions: int = 1000  # spread over all kinds
    interval: float = 5.0  # seconds between deltas of a live session
    hold: float = 20.0
    kinds: tuple[str, ...] = ORDER


# -- 1. pump throughput ---------------------------------------------------------------------


async def _throughput(
    c: Corral, rts: Runtimes, kinds: list[str], cfg: AdaptersConfig, llm: Child
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with api_client(c.url, c.dev_key) as dev:
        for kind in kinds:
            paced = KINDS[kind].paced_s
            k = cfg.throughput_sessions * (PACED_FACTOR if paced else 1)
            prompt = fast_prompt(cfg.throughput_words)
            if paced:
                prompt = prompt.replace("[[slow:0]]", f"[[slow:{paced:g}]]")
            try:
                agent = (await rts.register(c.url, c.admin_key, c.dev_key, kind, k))[0]
                warm, *ids = await create_sessions(dev, [agent] * (k + 1))
                await post_messages(dev, [warm], [fast_prompt(20)])
                await wait_idle(dev, {agent}, 60)
                before = {s: (await call(dev, "GET", f"/v1/sessions/{s}"))["last_seq"] for s in ids}
                runtime_pids = [p.child.pid for p in rts.procs[kind]] + [llm.pid]
                cpu0, rt0, t0 = c.cpu(), group_cpu(runtime_pids), time.time()
                errors = await post_messages(dev, ids, [prompt] * k)
                finished = await wait_idle(dev, {agent}, 180)
                cpu1, rt1 = c.cpu(), group_cpu(runtime_pids)
                await asyncio.sleep(0.5)  # events a runtime sends after its turn ended
                events, last_ts, states = 0, t0, []
                for sid in ids:
                    session = await call(dev, "GET", f"/v1/sessions/{sid}")
                    states.append(session["state"])
                    events += session["last_seq"] - before[sid]
                    page = await call(
                        dev, "GET", f"/v1/sessions/{sid}/events?after={session['last_seq'] - 1}"
                    )
                    last_ts = max(last_ts, parse_ts(page["data"][-1]["ts"]) or t0)
                seconds = max(last_ts - t0, 1e-6)
                out[kind] = {
                    "sessions": k,
                    "words_per_reply": cfg.throughput_words,
                    "paced_turn_s": paced,
                    "events": events,
                    "events_per_turn": round(events / k, 1),
                    "seconds": round(seconds, 2),
                    "events_per_s": round(events / seconds, 1),
                    "corral_cpu_ms_per_event": round(1000 * (cpu1 - cpu0) / max(events, 1), 3),
                    "corral_cpu_percent": round(100 * (cpu1 - cpu0) / seconds, 1),
                    "runtime_and_llm_cpu_percent": round(100 * (rt1 - rt0) / seconds, 1),
                    "final_states": sorted(set(states)),
                    "errors": errors + ([] if finished else ["turns still running after 180 s"]),
                }
            except Exception as exc:  # one runtime failing must not hide the others
                out[kind] = {"errors": [f"{type(exc).__name__}: {exc}"]}
    return out


# -- 2 and 3. live sessions: memory, and whether streams keep flowing ------------------------


async def _live(
    c: Corral, rts: Runtimes, mix: dict[str, int], cfg: AdaptersConfig
) -> dict[str, Any]:
    n = sum(mix.values())
    errors: list[str] = []
    slots: list[tuple[str, str]] = []  # (kind, agent) per session
    first_agent: dict[str, str] = {}
    for kind, count in mix.items():
        agents = await rts.register(c.url, c.admin_key, c.dev_key, kind, count)
        first_agent[kind] = agents[0]
        slots += [(kind, agents[i // SESSIONS_PER_RUNTIME]) for i in range(count)]
    # Long enough for all turns to start and the window to pass; cancelled afterwards.
    turn_s = 2 * (n / 20 + 5) + cfg.hold + 30
    chars = max(8, round(turn_s / cfg.interval))
    async with clients(c, n) as (dev, stream_client):
        baseline = await warm_up(c, dev, list(first_agent.values()))
        ids = await create_sessions(dev, [agent for _, agent in slots])
        after_create = c.rss_mb()
        streams: list[LiveStream] = []
        try:
            streams += await open_streams(stream_client, ids)
            if broken := [s for s in streams if s.chunks.error]:
                errors.append(f"{len(broken)} streams did not open: {broken[0].chunks.error}")
            await asyncio.sleep(1.0)
            streams_open = c.rss_mb()
            started, cpu_started = time.time(), c.cpu()
            prompts = [slow_prompt(kind, chars, cfg.interval) for kind, _ in slots]
            if refused := await post_messages(dev, ids, prompts):
                errors.append(f"{len(refused)} messages refused: {refused[0]}")
            posted, cpu_posted = time.time(), c.cpu()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(s.first_delta.wait() for s in streams)), 60 + 2 * cfg.interval
                )
            if silent := sum(not s.first_delta.is_set() for s in streams):
                errors.append(f"{silent} streams got no delta within {60 + 2 * cfg.interval:g} s")
            t0, cpu0 = time.time(), c.cpu()
            rt0 = group_cpu(rts.pids())
            samples = []
            while time.time() < t0 + cfg.hold:
                await asyncio.sleep(1.0)
                samples.append(c.rss_mb())
            t1, cpu1, rt1 = time.time(), c.cpu(), group_cpu(rts.pids())
            if t1 - started > turn_s - 5:
                errors.append(f"turns ({turn_s:.0f} s) may have ended before the window did")
            peak = status_kb(c.child.pid, "VmHWM") / 1024
            await cancel_all(dev, ids)
        finally:
            await close_streams(streams)
    flow = stream_flow(streams, slots, t0, t1, cfg.interval)
    frames = flow.pop("deltas_in_window")
    rss = max(samples)
    return {
        "sessions": n,
        "mix": mix,
        "interval_s": cfg.interval,
        "baseline_rss_mb": round(baseline, 1),
        "rss_after_create_mb": round(after_create, 1),
        "rss_streams_open_mb": round(streams_open, 1),
        "rss_live_mb": round(rss, 1),
        "rss_live_last_mb": round(samples[-1], 1),
        "peak_rss_mb": round(peak, 1),
        "kb_per_session": round(1024 * (rss - baseline) / n, 1),
        "kb_per_session_created": round(1024 * (after_create - baseline) / n, 1),
        "kb_per_session_stream_open": round(1024 * (streams_open - baseline) / n, 1),
        "start_turns_s": round(posted - started, 2),
        "corral_cpu_ms_per_turn_start": round(1000 * (cpu_posted - cpu_started) / n, 2),
        "first_delta_wait_s": round(t0 - posted, 2),
        "window_s": round(t1 - t0, 2),
        "deltas_per_s": round(frames / (t1 - t0), 1),
        "corral_cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
        "corral_cpu_ms_per_delta": round(1000 * (cpu1 - cpu0) / max(frames, 1), 2),
        "runtimes_cpu_percent": round(100 * (rt1 - rt0) / (t1 - t0), 1),
        **flow,
        "passed": not errors and flow["streams_kept_receiving"] == n and rss < TARGET_MB,
        "errors": errors,
    }


async def _tail(
    c: Corral, rts: Runtimes, kind: str, n: int, words: int, *, follow: bool
) -> dict[str, Any]:
    """RSS per session after a long reply (more events than the stream hub keeps per followed
    session), the turns and pumps over; with ``follow`` every session keeps an open stream."""
    agents = await rts.register(c.url, c.admin_key, c.dev_key, kind, n)
    async with clients(c, n) as (dev, stream_client):
        warmed = await warm_up(c, dev, agents)
        slots = [agents[i // SESSIONS_PER_RUNTIME] for i in range(n)]
        # A first burst without streams: the process's high-water mark under this load (queues,
        # batches) is reached once and reused, so it is not counted against the sessions.
        await post_messages(dev, await create_sessions(dev, slots), [fast_prompt(words)] * n)
        await wait_idle(dev, set(agents), 600)
        await asyncio.sleep(PUMP_GRACE + 1.0)
        baseline = c.rss_mb()
        ids = await create_sessions(dev, slots)
        streams: list[LiveStream] = []
        try:
            if follow:
                streams += await open_streams(stream_client, ids)
            started = time.time()
            errors = await post_messages(dev, ids, [fast_prompt(words)] * n)
            finished = await wait_idle(dev, set(agents), 600)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(s.turn_done.wait() for s in streams)), 30)
            last_seqs = [(await call(dev, "GET", f"/v1/sessions/{s}"))["last_seq"] for s in ids]
            seconds = time.time() - started
            await asyncio.sleep(PUMP_GRACE + 1.0)  # the pumps are gone, the streams stay
            rss = c.rss_mb()
            done = sum(s.turn_done.is_set() for s in streams)
            deltas = sum(
                sum(e.get("type") == "message.delta" for _, e in s.chunks.frames()) for s in streams
            )
        finally:
            await close_streams(streams)
        await asyncio.sleep(1.0)
    return {
        "kind": kind,
        "sessions": n,
        "streams": follow,
        "words_per_reply": words,
        "events_recorded": sum(last_seqs),
        "deltas_received": deltas,
        "turns_seconds": round(seconds, 1),
        "warmed_up_rss_mb": round(warmed, 1),
        "baseline_rss_mb": round(baseline, 1),  # after the first burst
        "first_burst_high_water_mb": round(baseline - warmed, 1),
        "rss_mb": round(rss, 1),
        "kb_per_session": round(1024 * (rss - baseline) / n, 1),
        "rss_streams_closed_mb": round(c.rss_mb(), 1),
        "streams_saw_turn_end": done,
        "errors": errors + ([] if finished else ["turns still running after 600 s"]),
    }


# -- the scenario ----------------------------------------------------------------------------


async def run(dbs: Databases, backend: str, workdir: Path, cfg: AdaptersConfig) -> dict[str, Any]:
    skipped = {k: why for k in cfg.kinds if (why := unavailable(k)) is not None}
    kinds = [k for k in cfg.kinds if k not in skipped]
    if not kinds:
        raise RuntimeError(f"no runtime kind can run: {skipped}")
    share, extra = divmod(cfg.target_sessions, len(kinds))
    target_mix = {k: share + (i < extra) for i, k in enumerate(kinds)}
    result: dict[str, Any] = {
        "config": {**cfg.__dict__, "kinds": kinds, "sessions_per_runtime": SESSIONS_PER_RUNTIME},
        "skipped": skipped,
    }
    async with Supervisor(workdir / f"adapters-{backend}") as sup:
        port = free_port()
        argv = [PYTHON, "-m", "corral.sim.mock_llm", "--port", str(port),
                "--log-level", "warning"]  # fmt: skip
        llm = sup.spawn("mock-llm", argv, cwd=workdir)
        await wait_http(f"http://127.0.0.1:{port}/v1/models", llm)
        rts = Runtimes(sup, workdir / f"adapters-{backend}", f"http://127.0.0.1:{port}")
        wanted = {
            k: max(cfg.memory_sessions, target_mix[k], cfg.throughput_sessions) for k in kinds
        }
        await rts.ensure(wanted)
        async with corral_process(dbs, backend, sup, workdir) as c:
            result["throughput"] = await _throughput(c, rts, kinds, cfg, llm)
        result["memory"] = {}
        for kind in kinds:
            try:
                async with corral_process(dbs, backend, sup, workdir) as c:
                    result["memory"][kind] = await _live(c, rts, {kind: cfg.memory_sessions}, cfg)
            except Exception as exc:
                result["memory"][kind] = {"errors": [f"{type(exc).__name__}: {exc}"]}
        async with corral_process(dbs, backend, sup, workdir) as c:
            result["target"] = await _live(c, rts, target_mix, cfg)
        result["tail"] = {}
        for follow in (True, False):
            name = "streams" if follow else "no_streams"
            try:
                async with corral_process(dbs, backend, sup, workdir) as c:
                    result["tail"][name] = await _tail(
                        c, rts, kinds[0], max(1, cfg.memory_sessions // 2), TAIL_WORDS,
                        follow=follow,
                    )  # fmt: skip
            except Exception as exc:
                result["tail"][name] = {"errors": [f"{type(exc).__name__}: {exc}"]}
    return result


# -- the table -------------------------------------------------------------------------------

Row = tuple[str, Callable[[dict[str, Any]], str]]


def _node(data: dict[str, Any], *path: str) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _pump(node: Any) -> str:
    if not isinstance(node, dict) or "events_per_s" not in node:
        return "failed" if isinstance(node, dict) else "-"
    return f"{node['events_per_s']:,.0f} ({node['corral_cpu_ms_per_event']:.2f} ms)"


def _kb(node: Any) -> str:
    if not isinstance(node, dict) or "kb_per_session" not in node:
        return "failed" if isinstance(node, dict) else "-"
    kept = "" if node["streams_kept_receiving"] == node["sessions"] else " (streams stalled)"
    return f"{node['kb_per_session']:,.0f}{kept}"


def _tail_cell(node: Any) -> str:
    if not isinstance(node, dict):
        return "-"
    with_, without = node.get("streams") or {}, node.get("no_streams") or {}
    if "kb_per_session" not in with_ or "kb_per_session" not in without:
        return "failed"
    return f"{with_['kb_per_session']:,.0f} / {without['kb_per_session']:,.0f} ({with_['kind']})"


def _target(node: Any) -> str:
    if not isinstance(node, dict) or "rss_live_mb" not in node:
        return "failed" if isinstance(node, dict) else "-"
    verdict = "yes" if node["passed"] else "no"
    return (
        f"{node['rss_live_mb']:,.0f} MB, {node['kb_per_session']:,.0f} KB each, "
        f"{node['streams_kept_receiving']}/{node['sessions']} flowing: {verdict}"
    )


def _cell(show: Callable[[Any], str], path: tuple[str, ...], result: dict[str, Any]) -> str:
    return show(_node(result, "adapters", *path))


def table_rows(report: dict[str, Any]) -> list[Row]:
    cfg = report["config"]
    kinds = [k for k in ORDER if any(
        _node(r, "adapters", "throughput", k) is not None for r in report["results"].values()
    )]  # fmt: skip
    rows: list[Row] = []
    for kind in kinds:
        rows.append((f"Adapters, {kind}: pump events/s at full speed (Corral CPU ms/event)",
                     functools.partial(_cell, _pump, ("throughput", kind))))  # fmt: skip
    for kind in kinds:
        rows.append((f"Adapters, {kind}: KB per live session (stream + turn, "
                     f"N={cfg['adapters_sessions']})",
                     functools.partial(_cell, _kb, ("memory", kind))))  # fmt: skip
    rows.append(
        (
            f"Adapters: KB per session after a {TAIL_WORDS}-word reply, turn over, with / "
            f"without an open stream (N={max(1, cfg['adapters_sessions'] // 2)})",
            functools.partial(_cell, _tail_cell, ("tail",)),
        )
    )
    rows.append((f"Adapters: {cfg['adapters_target']:,} live sessions, all runtimes, one Corral: "
                 f"RSS (< {TARGET_MB:.0f} MB), per session, streams flowing",
                 functools.partial(_cell, _target, ("target",))))  # fmt: skip
    return rows
