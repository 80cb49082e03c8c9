"""The gateway scenario's report: the overhead measurement's summary and verdict from results
shaped as the load generator writes them, and the tables of a recorded run (numbers are never
asserted here: the bench prints its verdicts)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import gateway_overhead, gateway_report

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "gateway.json"


def _latency(stream: bool, added_p50: float) -> dict[str, Any]:
    total = {"n": 900, "p50": added_p50, "p99": 1.0, "mean": added_p50, "max": 2.0}
    side = {"total_ms": total, "ttft_ms": None, "errors": 0, "last_error": None}
    return {"kind": "latency", "stream": stream, "added": {"total_ms": total, "ttft_ms": None},
            "proxy": side, "direct": side}  # fmt: skip


def _load(cpu: float, per_s: float) -> dict[str, Any]:
    return {"kind": "load", "errors": 0, "per_s": per_s, "cpu_ms_per_request": {"proxy": cpu}}


def test_the_overhead_is_traced_minus_untraced_with_an_a_a_check() -> None:
    results = [_latency(False, 0.02), _latency(True, 0.01), _latency(False, 0.003),
               _latency(True, -0.004), _load(0.36, 2700.0), _load(0.32, 3000.0)]  # fmt: skip
    out = gateway_overhead.summarize(results)
    assert out["added_ms"]["chat"]["p50"] == 0.02 and out["a_a_ms"]["chat_stream"]["p50"] == -0.004
    assert out["cpu_ms_per_request"] == {"on": 0.36, "off": 0.32}
    shares = gateway_overhead.verdict(out, {"added_ms": {"chat": {"p50": 0.5}}})
    assert shares == {"latency_pct": 4.0, "cpu_pct": 11.1}


def test_the_recorded_run_renders() -> None:
    report = json.loads(RESULTS.read_text())
    result = report["results"]
    console = Console(file=io.StringIO(), width=140)
    gateway_report.render({"gateway": result, "config": report["config"]}, console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "Tracing + audit on a gateway call" in text and "A/A check" in text
    assert {t["target"] for t in result["targets"]} >= {"peak RSS (MB)", "startup (s)"}
    assert set(result["overhead"]["shares"]) == {"latency_pct", "cpu_pct"}
