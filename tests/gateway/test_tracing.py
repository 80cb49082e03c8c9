"""Each model call is a ``chat {model}`` span in the caller's trace, and an audit record."""

from __future__ import annotations

import sqlalchemy as sa

from corral.store.tables import audit_records, spans
from tests.gateway.conftest import GatewaySetup

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


async def test_a_call_is_a_child_span_of_the_callers_trace(gw: GatewaySetup) -> None:
    client = gw.openai(default_headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
    await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "[[usage:12,3]] hi"}]
    )
    services = gw.corral.services
    await services.gateway.recorder.flush()
    await services.telemetry.flush(everything=True)
    async with services.db.read() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(
            sa.select(spans).where(spans.c.trace_id == TRACE))]  # fmt: skip
    (span,) = [r for r in rows if r["name"] == "chat gpt-4o-mini"]
    assert span["parent_id"] == PARENT and span["kind"] == "client"
    attrs = span["attributes"]
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == "mock-model"
    assert attrs["gen_ai.usage.input_tokens"] == 12 and attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["server.address"] == "127.0.0.1" and attrs["http.response.status_code"] == 200
    assert "gen_ai.system" not in attrs and "prompt_tokens" not in str(attrs)


async def test_each_call_is_audited_with_its_trace(gw: GatewaySetup) -> None:
    client = gw.openai(default_headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
    await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "audited"}]
    )
    await gw.corral.services.audit.aclose()  # drains the decision queue
    async with gw.corral.services.db.read() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(
            sa.select(audit_records).where(audit_records.c.action == "model.call"))]  # fmt: skip
    (row,) = rows
    assert row["decision"] == "allow" and row["trace_id"] == TRACE
    assert row["resource_type"] == "model" and row["resource_id"] == "gpt-4o-mini"
