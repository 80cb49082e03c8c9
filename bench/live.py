"""Concurrent live sessions: each with an SSE client attached and a turn streaming.

A level of N sessions, on R replicas:

1. N sessions exist (created through the API, round-robin over the replicas; at most
   :data:`SESSIONS_PER_SIM` per simulated OpenCode, so more simulators are started as the
   levels grow). The simulators answer the mock LLM's script in their own process
   (``--llm-url local``): the model's side of the turns costs no extra process or HTTP hop;
2. session *i* gets an SSE client on replica ``i % R`` (resuming after its last seq);
3. with the streams open and idle, CPU is sampled for 2 s (the cost of idle streams), longer
   if the previous level's pumps are still lingering (their grace period plus 1 s);
4. every session is sent a message on replica ``(i + 1) % R``, so with three replicas the turn
   is pumped by a different replica than the one streaming it and every event crosses
   PostgreSQL ``LISTEN/NOTIFY``. The message scripts the mock LLM to stream a one-character
   chunk every ``1 / rate`` seconds: each chunk is one ``message.part.delta`` on the runtime's
   bus and one ``message.delta`` event in Corral. A turn lasts ``turn_seconds`` plus the time
   starting all turns is expected to take (1.5 x, at the previous level's start rate) plus
   :data:`SETTLE`, so that every turn is still streaming during the window;
5. from :data:`SETTLE` seconds after the last message was accepted (the backlog of the start-up
   burst, hundreds of turn starts in a few seconds, is not steady state; how long starting
   took is reported as ``start_turns_s``) until shortly before the first turn ends (the
   *window*), every frame a client receives is timed, and CPU per process is sampled. This
   process's garbage collector is held off from the end of the starts to the end of the window
   (it keeps every frame read, and a full collection of that heap stalled its loop 100-200 ms,
   which would be counted as Corral's latency);
6. the level waits for every turn to complete, then closes the streams.

Latencies, per frame received in the window (same machine, same clock):

* **recorded→client** = receive time - the event's ``ts`` (Corral sets ``ts`` when the
  recording transaction has its connection, just before the INSERT): commit, NOTIFY, the stream
  reader's wake-up and read, JSON, HTTP, and this client's own loop;
* **runtime→recorded** = ``ts`` - the arrival of the same delta at a side subscriber on the
  simulator's ``/event`` bus (matched by part id and text offset): the runtime's SSE, Corral's
  parsing and routing, the pump's queue and waiting for a connection;
* **runtime→client**, the sum: what a user would see added to the model's own latency.

A level passes if runtime→client p99 < 50 ms, recorded→client p99 < 50 ms, every message was
accepted, every stream stayed up and every turn completed. The ladder stops after two failing
levels in a row; a failed level below the largest passing one is reported next to it. Deltas
the runtime emitted that never reached their client are counted separately (``lost_deltas``): at these rates they come from Corral bugs, not from load (see
``docs/benchmarks.md``). In a part that lost deltas the offsets no longer line up, so it only
contributes recorded→client samples.

Where the time goes: CPU per process over the window (and over the idle sample), Corral CPU per
event received, how late this process's own loop wakes up (``client_loop_lag_ms``) and how long
each replica takes to answer ``GET /healthz`` meanwhile (``replica_healthz_ms``), and how long
PostgreSQL takes to commit a one-row insert on its own connection (``postgres_commit_ms``, with
every commit of 50 ms or more in ``postgres_commit_stalls_ms``: see :mod:`bench.probes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.cluster import ApiError, Cluster, Replica, api_client, call
from bench.harness import Latency
from bench.probes import commit_latency, responsiveness
from bench.procs import CpuMeter
from bench.streams import Chunks, CorralStream, SimTap, parse_ts, runtime_deltas

SESSIONS_PER_SIM = 100
TARGET_P99_MS = 50.0
MIN_WINDOW = 2.0
POST_CONCURRENCY = 16
CREATE_CONCURRENCY = 16
PUMP_GRACE = 3.0  # Corral's default CORRAL_PUMP_GRACE_SECONDS
#: After the last turn started, before the window: the start-up burst's backlog drains.
SETTLE = 5.0


@dataclass(frozen=True)
class LiveConfig:
    levels: tuple[int, ...]
    turn_seconds: float
    rate: float  # deltas per second per session
    idle_sample: float = 2.0

    def prompt(self, seconds: float) -> str:
        # The reply is "Echo: " plus this text; the mock LLM sends it one character per chunk
        # when the turn is slow enough (chunks = min(len(reply), ceil(seconds / 0.1))).
        chunks = max(8, round(self.rate * seconds))
        if chunks > math.ceil(seconds / 0.1):
            raise ValueError("rate too high: the mock LLM paces chunks at most every 0.1 s")
        return f"[[slow:{seconds:g}]] " + "x" * (chunks - len("Echo: "))


@dataclass
class LiveSession:
    id: str
    native_id: str
    last_seq: int


@dataclass
class Pool:
    """Sessions created so far for one cluster, reused level after level."""

    sessions: list[LiveSession] = field(default_factory=list)
    taps: list[tuple[SimTap, httpx.AsyncClient]] = field(default_factory=list)
    quiet_since: float = 0.0  # when the last level's turns had all ended
    start_rate: float = 15.0  # turns started per second at the last level (a first guess)

    async def aclose(self) -> None:
        for tap, client in self.taps:
            await tap.close()
            await client.aclose()
        self.taps.clear()


async def _grow(cluster: Cluster, replicas: list[Replica], pool: Pool, wanted: int) -> None:
    assert cluster.user_key is not None
    sims_needed = math.ceil(wanted / SESSIONS_PER_SIM)
    if len(cluster.sims) < sims_needed:
        await cluster.add_sims(sims_needed - len(cluster.sims))
    for sim in cluster.sims[len(pool.taps) :]:
        client = httpx.AsyncClient(base_url=sim.url, timeout=httpx.Timeout(None, connect=5.0))
        tap = SimTap(client)
        tap.start()
        await asyncio.wait_for(tap.chunks.connected.wait(), 10)
        pool.taps.append((tap, client))
    missing = range(len(pool.sessions), wanted)
    if not missing:
        return
    made: dict[int, LiveSession] = {}
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)
    clients = {}
    async with contextlib.AsyncExitStack() as stack:
        for replica in replicas:
            clients[replica.index] = await stack.enter_async_context(
                api_client(replica.url, cluster.user_key)
            )

        async def create(i: int) -> None:
            agent = cluster.sims[i // SESSIONS_PER_SIM].agent_id
            client = clients[replicas[i % len(replicas)].index]
            async with gate:
                body = await call(client, "POST", "/v1/sessions", {"agent_id": agent})
            made[i] = LiveSession(str(body["id"]), str(body["native_session_id"]), 0)

        await asyncio.gather(*(create(i) for i in missing))
    pool.sessions += [made[i] for i in missing]


async def _level(
    cluster: Cluster,
    replicas: list[Replica],
    pool: Pool,
    n: int,
    cfg: LiveConfig,
) -> dict[str, Any]:
    assert cluster.user_key is not None
    await _grow(cluster, replicas, pool, n)
    meter_groups = _groups(cluster, replicas)
    sessions = pool.sessions[:n]
    errors: list[str] = []
    seconds = cfg.turn_seconds
    r = len(replicas)
    limits = httpx.Limits(max_connections=n + 8, max_keepalive_connections=n + 8)
    timeout = httpx.Timeout(None, connect=10.0)
    headers = {"Authorization": f"Bearer {cluster.user_key}"}
    async with contextlib.AsyncExitStack() as stack:
        stream_clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=rep.url, headers=headers, limits=limits, timeout=timeout)
            )
            for rep in replicas
        ]
        post_clients = [
            await stack.enter_async_context(api_client(rep.url, cluster.user_key))
            for rep in replicas
        ]
        streams = [
            CorralStream(stream_clients[i % r], s.id, s.last_seq) for i, s in enumerate(sessions)
        ]
        for stream in streams:
            stream.start()
        try:
            await asyncio.wait_for(
                asyncio.gather(*(s.chunks.connected.wait() for s in streams)), 30
            )
            broken = [s for s in streams if s.chunks.error]
            if broken:
                errors.append(f"{len(broken)} streams failed to open: {broken[0].chunks.error}")

            # Idle streams, sampled while waiting out the pumps of the previous level: a pump
            # lingers CORRAL_PUMP_GRACE_SECONDS (3 s) after its turn, and a turn started just as
            # that runs out loses its pump (see docs/benchmarks.md, "What is wrong").
            idle = CpuMeter(meter_groups)
            idle.start()
            quiet = pool.quiet_since + PUMP_GRACE + 1.0 - time.time()
            await asyncio.sleep(max(cfg.idle_sample, quiet))
            idle_cpu = idle.stop()
            taps_from = [len(tap.chunks.reads) for tap, _ in pool.taps]
            # Turns last long enough to leave a measured window once all have started.
            # (1.5 x the expected start time: starting is slower the more sessions there are.)
            seconds = round(cfg.turn_seconds + 1.5 * n / pool.start_rate + SETTLE, 1)
            prompt = cfg.prompt(seconds)
            gate = asyncio.Semaphore(POST_CONCURRENCY)
            refused: list[str] = []

            # Independent sessions are not in step: spread the turn starts over one delta
            # interval at least, so their chunks do not all arrive at the same instant.
            spacing = 1.0 / cfg.rate / n

            async def send(i: int, session: LiveSession) -> None:
                await asyncio.sleep(max(0.0, first_post + i * spacing - time.time()))
                async with gate:
                    try:
                        await call(
                            post_clients[(i + 1) % r],
                            "POST",
                            f"/v1/sessions/{session.id}/messages",
                            {"text": prompt},
                        )
                    except (ApiError, httpx.HTTPError) as exc:
                        refused.append(str(exc))

            first_post = time.time()
            await asyncio.gather(*(send(i, s) for i, s in enumerate(sessions)))
            started = time.time()
            pool.start_rate = max(n / max(started - first_post, 1e-3), 5.0)
            # This process's own collection (and its stall) happens now, not in the window.
            gc.collect()
            gc.freeze()
            gc.disable()
            await asyncio.sleep(SETTLE)
            window_start = time.time()
            window_end = first_post + seconds - 0.3
            if refused:
                errors.append(f"{len(refused)} messages refused: {refused[0]}")
            busy: dict[str, Any] | None = None
            probes: dict[str, Any] = {}
            if window_end - window_start < MIN_WINDOW:
                errors.append(
                    f"starting {n} turns took {started - first_post:.1f} s, leaving no "
                    f"window of {MIN_WINDOW:g} s with all of them streaming"
                )
            else:
                meter = CpuMeter(meter_groups)
                meter.start()
                probes, commits = await asyncio.gather(
                    responsiveness(post_clients, window_end),
                    commit_latency(cluster.database_url, window_end),
                )
                probes.update(commits)
                busy = meter.stop()
            settle = started + seconds + 20.0 - time.time()  # the last turn began at `started`
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(s.turn_done.wait() for s in streams if not s.chunks.error)),
                    max(settle, 1.0),
                )
            await asyncio.sleep(0.3)  # the last frames of the runtime reach the taps
        finally:
            gc.enable()
            gc.unfreeze()
            for stream in streams:
                await stream.close()
    pool.quiet_since = time.time()
    unfinished = sum(1 for s in streams if not s.turn_done.is_set())
    if unfinished:
        errors.append(f"{unfinished} turns did not complete within {seconds + 20:g} s of starting")
    stream_errors = [s.chunks.error for s in streams if s.chunks.error and not s.turn_done.is_set()]
    if stream_errors:
        errors.append(f"{len(stream_errors)} streams broke: {stream_errors[0]}")

    emitted: dict[tuple[str, int], tuple[float, str]] = {}
    for (tap, _), start in zip(pool.taps, taps_from, strict=True):
        emitted.update(runtime_deltas(Chunks(reads=tap.chunks.reads[start:])))
    stats = _latencies(streams, sessions, emitted, window_start, window_end)
    passed = (
        not errors
        and stats["runtime_to_client_ms"]["n"] > 0
        and stats["runtime_to_client_ms"]["p99"] < TARGET_P99_MS
        and stats["recorded_to_client_ms"]["p99"] < TARGET_P99_MS
    )
    corral = [k for k in meter_groups if k.startswith("corral-")]
    per_event = None
    if busy is not None and stats["frames_in_window"]:
        used = sum(busy["percent_of_one_core"].get(k, 0.0) for k in corral) / 100 * busy["seconds"]
        per_event = round(1000 * used / stats["frames_in_window"], 2)
    idle_share = sum(idle_cpu["percent_of_one_core"].get(k, 0.0) for k in corral)
    return {
        "sessions": n,
        "passed": passed,
        # Not part of "passed": lost to Corral bugs described in docs/benchmarks.md, not load.
        "lost_deltas": stats.pop("missing_deltas"),
        "corral_cpu_ms_per_event": per_event,
        "corral_idle_cpu_percent_per_100_streams": round(100 * idle_share / n, 1),
        "window_s": round(max(window_end - window_start, 0.0), 2),
        "turn_s": seconds,
        "start_turns_s": round(started - first_post, 2),
        **stats,
        **probes,
        "cpu_idle_streams": idle_cpu,
        "cpu_streaming": busy,
        "errors": errors,
    }


def _latencies(
    streams: list[CorralStream],
    sessions: list[LiveSession],
    emitted: dict[tuple[str, int], tuple[float, str]],
    window_start: float,
    window_end: float,
) -> dict[str, Any]:
    """Latency samples of the frames received in the window, and deltas that never arrived.

    A delta is matched to the runtime's by (part, offset); in a part where the client got fewer
    deltas than the runtime emitted, offsets no longer line up, so that part contributes to
    recorded→client only.
    """
    recorded_to_client: list[float] = []
    runtime_to_recorded: list[float] = []
    runtime_to_client: list[float] = []
    received = 0
    per_native: dict[str, int] = defaultdict(int)  # deltas the runtime emitted, per session
    per_part: dict[str, int] = defaultdict(int)
    for part, _ in emitted:
        per_part[part] += 1
    for _, native in emitted.values():
        per_native[native] += 1
    missing = 0
    for stream, session in zip(streams, sessions, strict=True):
        frames: list[tuple[float, float | None, tuple[str, int] | None]] = []
        offsets: dict[str, int] = {}
        got: dict[str, int] = defaultdict(int)
        for arrived, event in stream.chunks.frames():
            seq = event.get("seq")
            if isinstance(seq, int):
                session.last_seq = max(session.last_seq, seq)
            key: tuple[str, int] | None = None
            if event.get("type") == "message.delta":
                data = event.get("data") or {}
                part, text = str(data.get("part_id")), str(data.get("text") or "")
                offset = offsets.get(part, 0)
                offsets[part] = offset + len(text)
                key = (part, offset)
                got[part] += 1
            frames.append((arrived, parse_ts(event.get("ts")), key))
        missing += max(0, per_native.get(session.native_id, 0) - sum(got.values()))
        for arrived, ts, key in frames:
            if ts is None or not window_start <= arrived <= window_end:
                continue
            received += 1
            recorded_to_client.append(arrived - ts)
            if key is not None and key in emitted and got[key[0]] == per_part[key[0]]:
                runtime_to_recorded.append(ts - emitted[key][0])
                runtime_to_client.append(arrived - emitted[key][0])
    return {
        "frames_in_window": received,
        "events_per_s": round(received / max(window_end - window_start, 1e-6), 1),
        "recorded_to_client_ms": Latency.of(recorded_to_client).as_dict(),
        "runtime_to_recorded_ms": Latency.of(runtime_to_recorded).as_dict(),
        "runtime_to_client_ms": Latency.of(runtime_to_client).as_dict(),
        "missing_deltas": missing,
    }


def _groups(cluster: Cluster, replicas: list[Replica]) -> dict[str, list[int]]:
    """The processes whose CPU is reported, by role."""
    groups: dict[str, list[int]] = {}
    for replica in replicas:
        assert replica.child is not None
        groups[f"corral-{replica.index}"] = [replica.child.pid]
    groups["opencode-sims"] = [s.child.pid for s in cluster.sims]
    if cluster.llm is not None:
        groups["mock-llm"] = [cluster.llm.pid]
    groups["bench-clients"] = [os.getpid()]
    return groups


async def ladder(
    cluster: Cluster, replicas: list[Replica], pool: Pool, cfg: LiveConfig
) -> dict[str, Any]:
    """Levels in order until two in a row fail; the largest passing level is the answer, and
    every level below it that failed is reported with it (a lone failure is often a stall of
    the database's disk, which ``postgres_commit_stalls_ms`` shows; two in a row is load)."""
    levels: list[dict[str, Any]] = []
    best: int | None = None
    pool.start_rate = Pool.start_rate  # measured afresh for this set of replicas
    failed_in_a_row = 0
    for n in cfg.levels:
        result = await _level(cluster, replicas, pool, n, cfg)
        levels.append(result)
        if result["passed"]:
            best, failed_in_a_row = n, 0
            continue
        failed_in_a_row += 1
        if failed_in_a_row == 2:
            break
    return {
        "replicas": len(replicas),
        "rate_deltas_per_s": cfg.rate,
        "turn_seconds": cfg.turn_seconds,
        "target_p99_ms": TARGET_P99_MS,
        "max_sessions_passing": best,
        "levels": levels,
    }
