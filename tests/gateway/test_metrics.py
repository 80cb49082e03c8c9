"""The gateway's Prometheus families, filled from its call records, parsed by a real scraper."""

from __future__ import annotations

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.conftest import GatewaySetup


def _samples(text: str, name: str, **labels: str) -> list[float]:
    return [
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


async def test_calls_fill_the_gateway_histograms(gw: GatewaySetup) -> None:
    client = gw.openai()
    await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "[[usage:20,5]] a"}]
    )
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "b"}], stream=True
    )
    async for _ in stream:
        pass
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "[[fail:500]] c"}]
        )
    await gw.corral.services.gateway.recorder.flush()
    async with httpx.AsyncClient(base_url=gw.base) as scraper:
        text = (await scraper.get("/metrics")).text
    chat = {"gen_ai_operation_name": "chat", "gen_ai_request_model": "gpt-4o-mini"}
    counts = _samples(text, "gen_ai_server_request_duration_seconds_count", **chat)
    ok = _samples(text, "gen_ai_server_request_duration_seconds_count", **chat, error_type="")
    assert ok == [2.0] and sum(counts) == 3.0, text  # the upstream's 500 under its error type
    assert _samples(text, "gen_ai_server_time_to_first_token_seconds_count", **chat) == [1.0]
    assert _samples(text, "corral_gateway_overhead_seconds_count", **chat) == [3.0]
    (under_5ms,) = _samples(text, "corral_gateway_overhead_seconds_bucket", **chat, le="0.005")
    assert under_5ms >= 1  # admission is fast: at least one of three under 5 ms on any machine
    assert (
        _samples(text, "gen_ai_client_token_usage_sum", **chat, gen_ai_token_type="input")[0] >= 20
    )
