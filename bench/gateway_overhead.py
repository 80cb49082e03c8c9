"""What tracing and audit cost a gateway call, measured on the real gateway (issue 8's target:
under 5% of the gateway's own added latency).

Three gateway processes share the proxy's core and one freshly configured database: ``corral
gateway`` as shipped (trace context read and passed upstream, each commit of call rows sealed
by a ``model.calls`` audit record, decision records) and two of :mod:`bench.gateway_untraced`,
the same worker with those left out. Requests alternate between the traced one and an untraced
one, one at a time (c=1, the order flipped every pair), so the overhead is taken pair by pair
like the gateway's added latency: (traced minus untraced), p50 and p99. The same between the
two untraced ones (an A/A check) gives the measurement's resolution: what two identical
processes differ by. Then the traced and an untraced one run alone at c=64 for the CPU they
spend per call, background writes included.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from bench import gateway_peers as peers
from bench.procs import Supervisor, free_port

ROOT = Path(__file__).resolve().parents[1]


async def measure(
    sup: Supervisor, upstream_url: str, upstream_pid: int, workdir: Path, cores: dict[str, Any],
    requests: int, warmup: int, seconds: float,
) -> dict[str, Any]:  # fmt: skip
    from bench.gateway import _pin, first_success, loadgen

    ports = {"on": free_port(), "off": free_port(), "check": free_port()}
    launch = await peers.corral_launch(upstream_url, workdir / "overhead", ports["on"])
    env = {**launch.env, "PYTHONPATH": str(ROOT)}
    pin = _pin(cores["proxy"])
    started = time.perf_counter()
    children = {"on": sup.spawn("corral-traced", [*pin, *launch.argv], env=launch.env, cwd=workdir)}
    for name in ("off", "check"):
        argv = [sys.executable, "-m", "bench.gateway_untraced", "--port", str(ports[name])]
        children[name] = sup.spawn(f"corral-untraced-{name}", [*pin, *argv], env=env, cwd=ROOT)
    try:
        specs = {}
        for name, child in children.items():
            url = f"http://127.0.0.1:{ports[name]}"
            await first_success(url, launch.key, child, started)
            specs[name] = {"url": url, "key": launch.key, "api": "chat"}
        # A small difference between two noisy latencies: three times the pairs of a latency row.
        n = {"n": 3 * requests, "warmup": warmup}
        phases: list[dict[str, Any]] = [
            {"kind": "latency", "stream": stream, **n, "direct": specs["off"],
             "proxy": specs[against], "watch": {"proxy": children[against].pid}}
            for against in ("on", "check") for stream in (False, True)
        ]  # fmt: skip
        for name in ("on", "off"):
            phases.append({"kind": "load", "seconds": seconds, "warmup": 1.0, "concurrency": 64,
                           "target": specs[name],
                           "watch": {"proxy": children[name].pid, "upstream": upstream_pid}})  # fmt: skip
        results = await loadgen(phases, cores["load"])
    finally:
        for child in children.values():
            await sup.stop(child)
    return summarize(results)


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"added_ms": {}, "a_a_ms": {}, "cpu_ms_per_request": {}, "per_s": {},
                           "errors": 0}  # fmt: skip
    latencies = [r for r in results if r["kind"] == "latency"]
    for i, r in enumerate(latencies):  # traced vs untraced first, then untraced vs untraced
        name = "chat_stream" if r["stream"] else "chat"
        total = r["added"]["total_ms"] or {}
        out["added_ms" if i < 2 else "a_a_ms"][name] = {q: total.get(q) for q in ("p50", "p99")}
        out["errors"] += r["proxy"]["errors"] + r["direct"]["errors"]
    loads = [r for r in results if r["kind"] == "load"]
    for which, r in zip(("on", "off"), loads, strict=True):  # the order ``measure`` ran them
        out["cpu_ms_per_request"][which] = r["cpu_ms_per_request"].get("proxy")
        out["per_s"][which] = r["per_s"]
        out["errors"] += r["errors"]
    return out


def verdict(overhead: dict[str, Any], corral: dict[str, Any]) -> dict[str, Any]:
    """The overhead as shares of Corral's own added latency and CPU per call (from its row)."""
    added = ((corral.get("added_ms") or {}).get("chat") or {}).get("p50")
    extra = (overhead["added_ms"].get("chat") or {}).get("p50")
    cpu = overhead["cpu_ms_per_request"]
    shares: dict[str, Any] = {}
    if added and extra is not None:
        shares["latency_pct"] = round(100 * extra / added, 1)
    if cpu.get("on") and cpu.get("off") is not None:
        shares["cpu_pct"] = round(100 * (cpu["on"] - cpu["off"]) / cpu["on"], 1)
    return shares
