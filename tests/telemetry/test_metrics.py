"""``/metrics``: Prometheus text a real scraper parses, with the GenAI and governance families
filled in by real sessions (both databases)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.corral import corral_settings, running_corral
from tests.telemetry.scenario import two_turns, world


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(family: Any, sample: str, **labels: str) -> float:
    found = [
        s.value
        for s in family.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (sample, labels, family.samples)
    return float(found[0])


async def test_metrics_scrape(database_url: str, tmp_path: Path, opencode_sim_url: str) -> None:
    settings = corral_settings(database_url, tmp_path, pump_grace_seconds=0.5)
    async with running_corral(settings) as server:
        w = await world(server, opencode_sim_url)
        await two_turns(server, w)
        async with httpx.AsyncClient(base_url=server.url) as scraper:  # no key: like /healthz
            response = await scraper.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = _families(response.text)

    genai = {"gen_ai_operation_name": "invoke_agent", "gen_ai_provider_name": "opencode",
             "gen_ai_request_model": "mock/mock-model"}  # fmt: skip
    tokens = families["gen_ai_client_token_usage"]
    assert tokens.type == "histogram"
    for kind in ("input", "output"):
        assert (
            _value(tokens, "gen_ai_client_token_usage_count", gen_ai_token_type=kind, **genai) == 2
        )
        assert _value(tokens, "gen_ai_client_token_usage_sum", gen_ai_token_type=kind, **genai) > 0
    duration = families["gen_ai_client_operation_duration_seconds"]
    assert (
        _value(duration, "gen_ai_client_operation_duration_seconds_count", error_type="", **genai)
        == 2
    )
    first_chunk = families["gen_ai_client_operation_time_to_first_chunk_seconds"]
    assert (
        _value(first_chunk, "gen_ai_client_operation_time_to_first_chunk_seconds_count", **genai)
        == 2
    )

    decisions = families["corral_governance_decisions"]
    assert decisions.type == "counter"
    total = "corral_governance_decisions_total"
    assert _value(decisions, total, act="message.send", outcome="allow", code="allowed") == 2
    assert _value(decisions, total, act="session.create", outcome="allow", code="allowed") == 1
    assert _value(decisions, total, act="tool.use", outcome="deny", code="tool_denied") >= 1
    decide = families["corral_governance_decision_duration_seconds"]
    assert _value(decide, "corral_governance_decision_duration_seconds_count", act="tool.use") >= 2

    sessions = families["corral_sessions"]
    assert _value(sessions, "corral_sessions", state="idle") == 1
    assert _value(sessions, "corral_sessions", state="running") == 0
    budget = families["corral_budget_remaining_usd"]
    left = _value(budget, "corral_budget_remaining_usd", scope=f"team:{w['agent']['team_id']}")
    assert 4.0 < left < 5.0  # $5 less what two turns cost (and any reservation still held)
    lag = families["corral_pump_lag_seconds"]
    assert _value(lag, "corral_pump_lag_seconds_count") > 0
    # The LLM gateway's (filled by tests/gateway/test_metrics.py).
    for name in ("gen_ai_server_request_duration_seconds", "gen_ai_server_time_to_first_token_seconds",
                 "corral_gateway_overhead_seconds"):  # fmt: skip
        assert families[name].type == "histogram"
