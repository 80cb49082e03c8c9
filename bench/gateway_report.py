"""The ``gateway`` scenario's tables (proxies side by side, then the issue's targets) and JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from bench.gateway import LABELS, PROXIES
from bench.gateway_overhead import verdict

#: The issue's targets for Corral, on one core.
ADDED_P50_MAX_MS = 1.0
LATENCY_RATIO_MIN = 10.0
THROUGHPUT_RATIO_MIN = 15.0
RSS_MAX_MB = 120.0
STARTUP_MAX_S = 2.0
#: Issue 8's: tracing and audit add under 5% to the gateway's own added latency.
OVERHEAD_MAX_PCT = 5.0


def _n(value: Any, digits: int = 1) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def _get(node: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _pair(node: Any, direct: bool) -> str:
    if not isinstance(node, dict):
        return "-"
    text = f"{_n(node.get('p50'), 2)}/{_n(node.get('p99'), 2)}"
    return f"({text})" if direct else text


def _one(node: Any, direct: bool) -> str:
    text = _n(_get(node, "p50"), 2)
    return f"({text})" if direct and text != "-" else text


def _rate(row: dict[str, Any], bucket: str, level: int) -> str:
    node = _get(row, bucket, str(level))
    if not isinstance(node, dict):
        return "-"
    text = _n(node.get("per_s"), 0)
    return text + (f" [red]({node['errors']} err)[/red]" if node.get("errors") else "")


def peak(row: dict[str, Any]) -> float | None:
    """The best requests/s over the concurrency levels."""
    rates = [n["per_s"] for n in (row.get("load") or {}).values() if n.get("ok")]
    return max(rates) if rates else None


def gateway_table(result: dict[str, Any], cfg: dict[str, Any], quick: bool) -> Table:
    levels = cfg.get("gateway_levels", [1, 16, 64, 256])
    streams = cfg.get("gateway_stream_concurrency", 64)
    table = Table(
        title="LLM gateway, proxy on one core" + (" (--quick)" if quick else ""),
        box=box.SIMPLE_HEAVY,
        padding=(0, 0, 0, 1),
        pad_edge=False,
        caption="added ms = through the proxy minus direct to the mock at c=1, interleaved, "
        "p50/p99 of the pairwise differences (direct row, in parentheses: its own latency); TTFT: to the first content chunk of a "
        "20-chunk stream; stream: to its end",
    )
    table.add_column("Proxy", no_wrap=True)
    for head in ("added ms\np50/p99", "TTFT +ms\np50", "stream\n+ms p50",
                 *(f"req/s\nc={c}" for c in levels), f"streams/s\nc={streams}", "CPU\nms/req",
                 "RSS\nMB", "start\ns", "errors"):  # fmt: skip
        table.add_column(head, justify="right", no_wrap=True)
    for name in ("direct", *PROXIES):
        row = result["rows"].get(name)
        if row is None:
            continue
        if "error" in row:
            reason = "n/a: below"
            table.add_row(LABELS[name], f"[red]{reason}[/red]", *["-"] * (7 + len(levels)))
            continue
        direct = name == "direct"
        added = row.get("own_ms" if direct else "added_ms", {})
        table.add_row(
            LABELS[name],
            _pair(added.get("chat"), direct),
            _one(added.get("chat_stream_ttft"), direct),
            _one(added.get("chat_stream"), direct),
            *(_rate(row, "load", c) for c in levels),
            _rate(row, "streams", streams),
            _n(row.get("cpu_ms_per_request"), 2),
            _n(row.get("peak_rss_mb"), 0),
            "-" if direct else _n(row.get("startup_s"), 2),
            str(row.get("errors", "-")),
        )
    return table


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("[green]PASS[/green]" if ok else "[red]FAIL[/red]")


def targets(result: dict[str, Any], cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets: Corral's value, LiteLLM's, the ratio and the verdict."""
    rows = result["rows"]
    corral = rows.get("corral") or {}
    litellm = rows.get("litellm") or {}
    streams = str(cfg.get("gateway_stream_concurrency", 64))
    top = str(max(cfg.get("gateway_levels", [256])))

    def ratio(a: Any, b: Any) -> float | None:
        ok = isinstance(a, int | float) and isinstance(b, int | float) and b > 0
        return a / b if ok else None

    c_p50 = _get(corral, "added_ms", "chat", "p50")
    l_p50 = _get(litellm, "added_ms", "chat", "p50")
    c_streams = _get(corral, "streams", streams, "per_s")
    l_streams = _get(litellm, "streams", streams, "per_s")
    errors_top = _get(corral, "load", top, "errors")
    out = [
        ("added latency p50 (ms)", c_p50, l_p50, None,
         None if c_p50 is None else c_p50 <= ADDED_P50_MAX_MS, f"<= {ADDED_P50_MAX_MS} ms"),
        ("added latency p50: LiteLLM / Corral", c_p50, l_p50,
         None if c_p50 is None else ratio(l_p50, max(c_p50, 0.01)),
         None, f">= {LATENCY_RATIO_MIN:.0f}x"),
        ("requests/s, best level: Corral / LiteLLM", peak(corral), peak(litellm),
         ratio(peak(corral), peak(litellm)), None, f">= {THROUGHPUT_RATIO_MIN:.0f}x"),
        (f"streams/s c={streams}: Corral / LiteLLM", c_streams, l_streams,
         ratio(c_streams, l_streams), None, f">= {THROUGHPUT_RATIO_MIN:.0f}x"),
        ("peak RSS (MB)", corral.get("peak_rss_mb"), litellm.get("peak_rss_mb"), None,
         None if corral.get("peak_rss_mb") is None else corral["peak_rss_mb"] < RSS_MAX_MB,
         f"< {RSS_MAX_MB:.0f} MB"),
        ("startup (s)", corral.get("startup_s"), litellm.get("startup_s"), None,
         None if corral.get("startup_s") is None else corral["startup_s"] < STARTUP_MAX_S,
         f"< {STARTUP_MAX_S:.0f} s"),
        (f"errors at c={top}", errors_top, _get(litellm, "load", top, "errors"), None,
         None if errors_top is None else errors_top == 0, "0"),
    ]  # fmt: skip
    mins = {1: LATENCY_RATIO_MIN, 2: THROUGHPUT_RATIO_MIN, 3: THROUGHPUT_RATIO_MIN}
    rows_out = []
    for i, (label, mine, theirs, r, ok, goal) in enumerate(out):
        if i in mins:
            ok = None if r is None else r >= mins[i]
        rows_out.append({"target": label, "goal": goal, "corral": mine, "litellm": theirs,
                         "ratio": None if r is None else round(r, 2), "passed": ok})  # fmt: skip
    return rows_out


def targets_table(checks: list[dict[str, Any]]) -> Table:
    table = Table(title="Gateway targets (Corral vs LiteLLM, one core)")
    for head in ("Target", "goal", "Corral", "LiteLLM", "ratio", ""):
        table.add_column(head, justify="left" if head == "Target" else "right")
    for c in checks:
        ratio = "-" if c["ratio"] is None else f"{c['ratio']:,.1f}x"
        digits = 0 if c["target"].startswith("errors") else 2
        table.add_row(c["target"], c["goal"], _n(c["corral"], digits), _n(c["litellm"], digits), ratio,
                      _verdict(c["passed"]))  # fmt: skip
    return table


def overhead_table(overhead: dict[str, Any], corral: dict[str, Any]) -> Table:
    """Tracing and audit on a gateway call: traced minus untraced Corral, pair by pair."""
    shares = verdict(overhead, corral)
    overhead["shares"] = shares
    cpu, rate = overhead["cpu_ms_per_request"], overhead["per_s"]
    table = Table(title="Tracing + audit on a gateway call (Corral traced vs untraced, one core)")
    for head in ("Measure", "value", "goal", ""):
        table.add_column(head, justify="left" if head == "Measure" else "right")
    pct = shares.get("latency_pct")
    table.add_row("added latency p50/p99 (ms), chat", _pair(_get(overhead, "added_ms", "chat"),
                  False), "", "")  # fmt: skip
    table.add_row("added latency p50/p99 (ms), 20-chunk stream",
                  _pair(_get(overhead, "added_ms", "chat_stream"), False), "", "")  # fmt: skip
    table.add_row("A/A check: untraced vs untraced, chat / stream (ms)",
                  f"{_n(_get(overhead, 'a_a_ms', 'chat', 'p50'), 2)} / "
                  f"{_n(_get(overhead, 'a_a_ms', 'chat_stream', 'p50'), 2)}", "", "")  # fmt: skip
    table.add_row("p50 as a share of Corral's added latency p50", f"{_n(pct, 1)} %",
                  f"< {OVERHEAD_MAX_PCT:.0f} %",
                  _verdict(None if pct is None else pct < OVERHEAD_MAX_PCT))  # fmt: skip
    table.add_row("CPU ms per call at c=64, traced / untraced",
                  f"{_n(cpu.get('on'), 3)} / {_n(cpu.get('off'), 3)}", "", "")  # fmt: skip
    table.add_row("CPU share of tracing + audit", f"{_n(shares.get('cpu_pct'), 1)} %", "", "")
    table.add_row("requests/s at c=64, traced / untraced",
                  f"{_n(rate.get('on'), 0)} / {_n(rate.get('off'), 0)}", "", "")  # fmt: skip
    table.add_row("errors", str(overhead.get("errors", "-")), "0",
                  _verdict(overhead.get("errors") == 0))  # fmt: skip
    return table


def render(report: dict[str, Any], console: Console) -> None:
    result = report.get("gateway")
    if not isinstance(result, dict) or "rows" not in result:
        return
    cfg = report.get("config", {})
    console.print(gateway_table(result, cfg, bool(report.get("quick"))))
    result["targets"] = targets(result, cfg)
    console.print(targets_table(result["targets"]))
    if isinstance(result.get("overhead"), dict):
        console.print(overhead_table(result["overhead"], result["rows"].get("corral") or {}))
    notes = [result["cores"]["note"]]
    for name in PROXIES:
        notes += _get(result, "rows", name, "notes") or []
        idle = _get(result, "rows", name, "idle_cpu_share")
        if isinstance(idle, int | float) and idle > 0.02:
            notes.append(f"{LABELS[name]}: {idle:.0%} of its core busy while idle (no requests)")
        check = _get(result, "rows", name, "governance")
        if isinstance(check, dict):
            notes.append(
                f"{LABELS[name]} after the run: {check.get('calls_recorded')} calls recorded, "
                f"budget spent ${_n(check.get('budget_spent_usd'), 4)}, reserved "
                f"${_n(check.get('budget_reserved_usd'), 4)} (governance was on)"
            )
        other = _get(result, "rows", name, "other_work_on_core")
        if isinstance(other, float) and other > 0.1:
            notes.append(
                f"[yellow]{LABELS[name]}: other processes used up to {other:.0%} of the proxy's "
                "core during one of its runs: its numbers suffer[/yellow]"
            )
        lacks = _get(result, "rows", name, "messages")
        if isinstance(lacks, str) and lacks != "ok":
            notes.append(f"{LABELS[name]}: no Anthropic /v1/messages rows: {lacks}")
    direct = result["rows"].get("direct", {})
    share = _get(direct, "load", "64", "loadgen_cpu_share")
    notes.append(
        "requests/s = completed 200s per second over the run; CPU ms/req: the proxy's process "
        "tree (utime+stime) over the c=64 run; peak RSS: the tree, sampled every 50 ms; startup: "
        "spawn to the first proxied 200; errors: non-200s and unfinished streams, all runs"
        + (f"; load generator CPU share at direct c=64: {share:.0%}" if share is not None else "")
    )
    for note in notes:
        console.print(f"  [dim]- {note}[/dim]")
    for name, error in result.get("errors", {}).items():
        console.print(f"[yellow]{LABELS.get(name, name)}: {error}[/yellow]")


def save(report: dict[str, Any], path: Path) -> None:
    """The gateway part of a run's report, on its own (``bench/results/gateway.json``)."""
    keep = ("started_at", "quick", "machine", "seconds")
    out = {k: report[k] for k in keep if k in report}
    out["config"] = {k: v for k, v in report["config"].items() if k.startswith("gateway")}
    result = report.get("gateway")
    if isinstance(result, dict) and "rows" in result and "targets" not in result:
        result["targets"] = targets(result, report["config"])
    out["results"] = result
    out["errors"] = {k: v for k, v in report["errors"].items() if "gateway" in k}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
