"""The ``gateway`` scenario: Corral's LLM gateway against the LiteLLM proxy and a bare forwarder.

Each proxy runs alone, as its own process pinned to one core (``taskset -c 0``), in front of the
mock upstream (:mod:`bench.gateway_upstream`); the upstream, the load generator
(:mod:`bench.gateway_load`) and this process share the other core(s). Rows: the upstream direct
(the reference, and the proof the load generator is not the limit), the bare forwarder (the
floor of a Python proxy), LiteLLM, Corral (governance on). Per proxy:

* added latency at c=1: through the proxy minus direct to the upstream, the two interleaved in
  one run, p50 and p99 of the pairwise differences; non-streaming chat, stream time to the first
  content chunk, stream total (and the same for Anthropic ``/v1/messages``, in the JSON);
* requests/s at c=1, 16, 64, 256 and streams/s at c=64 over a fixed time after a warm-up, with
  the errors of each run;
* CPU ms per request of the proxy's process tree over the c=64 run, peak RSS of that tree
  (sampled every 50 ms from spawn to stop), startup (spawn to the first proxied 200).

A proxy that cannot be installed or started gets an error in its row; the table still prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import gateway_overhead
from bench import gateway_peers as peers
from bench.gateway_load import CHAT, cpu_of, rss_of, tree
from bench.procs import Child, Supervisor, free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
PROXIES = ("forwarder", "litellm", "corral")
LABELS = {"direct": "direct", "forwarder": "forwarder",
          "litellm": "LiteLLM", "corral": "Corral"}  # fmt: skip
STARTUP_TIMEOUT_S = 120.0
LOADGEN_TIMEOUT_S = 1_800.0
RSS_EVERY_S = 0.05
IDLE_S = 2.0  # idle CPU is measured over this long, after startup


@dataclass(frozen=True)
class GatewayConfig:
    requests: int = 300  # timed c=1 requests per latency measurement (after the warm-up)
    warmup: int = 50
    seconds: float = 5.0  # each throughput run
    warmup_s: float = 1.0
    levels: tuple[int, ...] = (1, 16, 64, 256)
    stream_concurrency: int = 64
    proxies: tuple[str, ...] = PROXIES
    delay_ms: float = 0.0  # the mock's delay before a reply and between stream chunks


# -- cores -------------------------------------------------------------------------------------


def layout() -> dict[str, Any]:
    """The proxy's core and the rest (upstream, load generator, this process)."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(allowed) < 2 or shutil.which("taskset") is None:
        return {"proxy": None, "load": None, "note": "not pinned (needs 2 cores and taskset)"}
    proxy = 0 if 0 in allowed else allowed[0]
    rest = [c for c in allowed if c != proxy]
    load = ",".join(map(str, rest))
    return {
        "proxy": str(proxy),
        "load": load,
        "note": f"proxy under test: taskset -c {proxy}; mock upstream, load generator and the "
        f"bench: taskset -c {load}",
    }


def _pin(cores: str | None) -> list[str]:
    return ["taskset", "-c", cores] if cores else []


@contextlib.contextmanager
def pinned(cores: str | None) -> Iterator[None]:
    """Every thread of this process on ``cores`` (away from the proxy) while the block runs."""
    if not cores:
        yield
        return
    wanted = {int(c) for c in cores.split(",")}
    saved: dict[int, set[int]] = {}
    for tid in map(int, os.listdir("/proc/self/task")):
        with contextlib.suppress(OSError):
            saved[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, wanted)
    try:
        yield
    finally:
        everything = set().union(*saved.values()) if saved else wanted
        for tid in map(int, os.listdir("/proc/self/task")):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, saved.get(tid, everything))


# -- helpers -----------------------------------------------------------------------------------


class RssPeak:
    """The largest resident size of a process tree, sampled until :meth:`stop`."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.pids = pid, 0, [pid]
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        refreshed = 0.0
        while True:
            if time.monotonic() - refreshed > 1.0:  # new children show up within a second
                self.pids, refreshed = await asyncio.to_thread(tree, self.pid), time.monotonic()
            self.peak = max(self.peak, rss_of(self.pids))
            await asyncio.sleep(RSS_EVERY_S)

    def hwm(self) -> int:
        """Sum of VmHWM over the tree: each process's own peak."""
        total = 0
        for pid in tree(self.pid):
            with contextlib.suppress(OSError, ValueError, IndexError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) * 1024
        return total

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def loadgen(phases: list[dict[str, Any]], cores: str | None) -> list[dict[str, Any]]:
    """Run :mod:`bench.gateway_load` (pinned) on these phases; its results."""
    from corral.sim.processes import die_with_parent

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        *_pin(cores), sys.executable, "-m", "bench.gateway_load",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=env, preexec_fn=die_with_parent,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(json.dumps(phases).encode()), LOADGEN_TIMEOUT_S
        )
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"load generator exited {proc.returncode}: {err.decode()[-1500:]}")
    return list(json.loads(out))


async def first_success(url: str, key: str, child: Child, started: float) -> float:
    """Seconds from ``started`` (the spawn) to the first 200 of a chat call through the proxy."""
    last = "no answer"
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=10.0) as http:
        while True:
            if not child.alive():
                lines = (ln.strip("│╭╮╰╯─ ") for ln in child.tail(15).splitlines())
                raise RuntimeError(
                    f"exited ({child.popen.returncode}): {' '.join(ln for ln in lines if ln)}"
                )
            try:
                reply = await http.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers)
                if reply.status_code == 200:
                    return time.perf_counter() - started
                last = f"HTTP {reply.status_code}: {reply.text[:300]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}"
            if time.perf_counter() - started > STARTUP_TIMEOUT_S:
                raise RuntimeError(f"no proxied 200 after {STARTUP_TIMEOUT_S:.0f} s: {last}")
            await asyncio.sleep(0.02)


async def idle_share(pid: int, seconds: float = IDLE_S) -> float:
    """The proxy tree's CPU share while no request comes in (background work)."""
    await asyncio.sleep(0.5)
    pids = tree(pid)
    before, started = cpu_of(pids), time.perf_counter()
    await asyncio.sleep(seconds)
    return round((cpu_of(pids) - before) / (time.perf_counter() - started), 3)


async def probe_messages(url: str, key: str) -> str | None:
    """None when ``/v1/messages`` answers (plain and streamed), else why not."""
    body = {"model": peers.ANTHROPIC_MODEL, "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    async with httpx.AsyncClient(timeout=30.0) as http:
        for stream in (False, True):
            reply = await http.post(f"{url}/v1/messages", json=body | {"stream": stream},
                                    headers=headers)  # fmt: skip
            if reply.status_code != 200:
                return (
                    f"/v1/messages{' (stream)' if stream else ''}: HTTP {reply.status_code}: "
                    + (reply.text[:200])
                )
    return None


def plan(
    cfg: GatewayConfig,
    upstream: str,
    proxy: dict[str, Any] | None,
    messages: bool,
    watch: dict[str, int],
) -> list[dict[str, Any]]:
    """The phases of one row: latency (interleaved with direct), then throughput."""
    direct = {"url": upstream, "api": "chat"}
    target = proxy or direct
    n = {"n": cfg.requests, "warmup": cfg.warmup}
    phases: list[dict[str, Any]] = []
    for api in ("chat", "messages") if messages else ("chat",):
        for stream in (False, True):
            phase = {"kind": "latency", "stream": stream, **n, "direct": direct | {"api": api},
                     "watch": watch}  # fmt: skip
            if proxy is not None:
                phase["proxy"] = proxy | {"api": api}
            phases.append(phase)
    run = {"kind": "load", "seconds": cfg.seconds, "warmup": cfg.warmup_s, "watch": watch}
    for c in cfg.levels:
        phases.append(run | {"target": target, "concurrency": c})
    phases.append(run | {"target": target, "concurrency": cfg.stream_concurrency, "stream": True})
    return phases


def summarize(results: list[dict[str, Any]], who: str, core: str | None = None) -> dict[str, Any]:
    """One row's numbers from the load generator's results (``who``: proxy or direct).

    ``added_ms``: p50 and p99 of (through the proxy minus direct), request pair by request pair
    (the direct row has its own latency as ``own_ms`` instead). ``core``: the proxy's; what else
    ran there during its runs is kept as ``other_work_on_core`` (the largest share of that core
    the proxy did not use).
    """
    lat = "added_ms" if who == "proxy" else "own_ms"
    row: dict[str, Any] = {"latency": {}, lat: {}, "load": {}, "streams": {}}
    errors = 0
    for r in results:
        if r["kind"] == "latency":
            name = r["api"] + ("_stream" if r["stream"] else "")
            row["latency"][name] = r
            errors += r[who]["errors"]
            numbers = r["added"] if who == "proxy" else r["direct"]
            for part in ("total_ms", "ttft_ms"):
                if numbers.get(part):
                    key = name + ("_ttft" if part == "ttft_ms" else "")
                    row[lat][key] = {q: numbers[part][q] for q in ("p50", "p99")}
        else:
            bucket = row["streams"] if r["stream"] else row["load"]
            bucket[str(r["concurrency"])] = r
            errors += r["errors"]
    at: dict[str, Any] = row["load"].get("64") or next(iter(row["load"].values()), {})
    row["cpu_ms_per_request"] = (at.get("cpu_ms_per_request") or {}).get(
        "proxy" if who == "proxy" else "upstream"
    )
    row["errors"] = errors
    others = [
        r["core_busy"][core] - r["cpu_share"].get("proxy", 0.0)
        for r in (*row["latency"].values(), *row["load"].values(), *row["streams"].values())
        if core is not None and core in r.get("core_busy", {})
    ]
    if others:
        row["other_work_on_core"] = round(max(0.0, *others), 3)
    return row


# -- the scenario --------------------------------------------------------------------------------


async def _launch(name: str, upstream: str, workdir: Path, port: int) -> peers.Launch:
    if name == "forwarder":
        return peers.forwarder_launch(upstream, port)
    if name == "litellm":
        python, why = await asyncio.to_thread(peers.ensure_litellm)
        if python is None:
            raise RuntimeError(f"LiteLLM unavailable: {why}")
        return peers.litellm_launch(python, upstream, workdir, port)
    try:
        return await peers.corral_launch(upstream, workdir, port)
    except Exception as exc:
        raise RuntimeError(f"gateway not available: {exc}") from exc


async def measure_proxy(
    sup: Supervisor, name: str, cfg: GatewayConfig, upstream: Child, url: str, workdir: Path,
    cores: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    port = free_port()
    launch = await _launch(name, url, workdir, port)
    started = time.perf_counter()
    child = sup.spawn(name, [*_pin(cores["proxy"]), *launch.argv], env=launch.env, cwd=workdir)
    rss = RssPeak(child.pid)
    proxy_url = f"http://127.0.0.1:{port}"
    try:
        try:
            startup = await first_success(proxy_url, launch.key, child, started)
        except RuntimeError as exc:
            prefix = "gateway not available: " if name == "corral" else ""
            raise RuntimeError(f"{prefix}{LABELS[name]} did not start: {exc}") from exc
        lacks = await probe_messages(proxy_url, launch.key)
        idle = await idle_share(child.pid)
        watch = {"proxy": child.pid, "upstream": upstream.pid}
        proxy = {"url": proxy_url, "key": launch.key}
        results = await loadgen(plan(cfg, url, proxy, lacks is None, watch), cores["load"])
        row = summarize(results, "proxy", cores["proxy"])
        row["peak_rss_mb"] = round(rss.peak / 2**20, 1)
        row["vmhwm_mb"] = round(rss.hwm() / 2**20, 1)
        row |= {"startup_s": round(startup, 3), "idle_cpu_share": idle, "notes": launch.notes,
                "messages": lacks or "ok", "command": launch.argv[:2]}  # fmt: skip
    finally:
        await rss.stop()
        await sup.stop(child)
    if launch.database is not None:
        row["governance"] = await asyncio.to_thread(peers.governance_check, launch.database)
    return row


async def run(workdir: Path, cfg: GatewayConfig) -> dict[str, Any]:
    cores = layout()
    out: dict[str, Any] = {"cores": cores, "rows": {}, "errors": {}}
    home = workdir / "gateway"
    with pinned(cores["load"]):
        async with Supervisor(home / "logs") as sup:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            argv = [*_pin(cores["load"]), sys.executable, "-m", "bench.gateway_upstream",
                    "--port", str(port), "--delay-ms", str(cfg.delay_ms)]  # fmt: skip
            upstream = sup.spawn("upstream", argv, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                 cwd=ROOT)  # fmt: skip
            await wait_http(f"{url}/v1/models", upstream, timeout=30)
            rss = RssPeak(upstream.pid)
            try:
                watch = {"upstream": upstream.pid}
                results = await loadgen(plan(cfg, url, None, True, watch), cores["load"])
                out["rows"]["direct"] = summarize(results, "direct")
                out["rows"]["direct"]["peak_rss_mb"] = round(rss.peak / 2**20, 1)
            finally:
                await rss.stop()
            for name in cfg.proxies:
                try:
                    out["rows"][name] = await measure_proxy(
                        sup, name, cfg, upstream, url, home, cores
                    )
                except Exception as exc:
                    out["errors"][name] = f"{exc}"
                    out["rows"][name] = {"error": f"{exc}"}
            if "corral" in cfg.proxies and "error" not in out["rows"]["corral"]:
                try:
                    out["overhead"] = await gateway_overhead.measure(
                        sup, url, upstream.pid, home, cores, cfg.requests, cfg.warmup, cfg.seconds
                    )
                except Exception as exc:
                    out["errors"]["overhead"] = f"{exc}"
    out["litellm_version"] = peers.LITELLM_VERSION
    return out
