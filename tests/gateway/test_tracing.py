"""Each model call is a ``chat {model}`` span in the caller's trace, and an audit record."""

from __future__ import annotations

import json

import openai
import pytest
import sqlalchemy as sa

from corral.audit.service import verify_database
from corral.store.tables import audit_records, gateway_calls, spans
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


async def test_calls_are_sealed_in_the_audit_chain_and_tampering_is_found(
    gw: GatewaySetup,
) -> None:
    client = gw.openai(default_headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
    for i in range(3):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"audited {i}"}]
        )
    with pytest.raises(openai.NotFoundError):  # refused: a decision record of its own too
        await client.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}]
        )
    services = gw.corral.services
    await services.gateway.recorder.flush()
    async with services.db.read() as conn:
        seals = [dict(r._mapping) for r in await conn.execute(
            sa.select(audit_records).where(audit_records.c.action == "model.calls"))]  # fmt: skip
        calls = [dict(r._mapping) for r in await conn.execute(sa.select(gateway_calls))]
    assert sum(json.loads(s["details"])["calls"] for s in seals) == 4
    assert {c["trace_id"] for c in calls} == {TRACE}
    assert (await verify_database(services.db)).ok

    victim = calls[0]
    async with services.db.write() as conn:
        await conn.execute(sa.update(gateway_calls).where(gateway_calls.c.id == victim["id"])
                           .values(cost_micros=victim["cost_micros"] + 1))  # fmt: skip
    report = await verify_database(services.db)
    assert report.problem is not None and report.problem.fault == "calls_mismatch"
    sealing = next(s for s in seals if s["resource_id"] == victim["batch_id"])
    assert report.problem.seq == sealing["seq"]

    async with services.db.write() as conn:
        await conn.execute(sa.update(gateway_calls).where(gateway_calls.c.id == victim["id"])
                           .values(cost_micros=victim["cost_micros"]))  # fmt: skip
    assert (await verify_database(services.db)).ok
    async with services.db.write() as conn:
        await conn.execute(sa.delete(gateway_calls).where(gateway_calls.c.id == victim["id"]))
    assert (await verify_database(services.db)).problem.fault == "calls_mismatch"  # type: ignore[union-attr]
    async with services.db.write() as conn:
        await conn.execute(sa.insert(gateway_calls).values({**victim, "batch_id": "bat_forged"}))
    report = await verify_database(services.db)
    assert report.problem is not None and report.problem.fault in (
        "calls_mismatch",
        "calls_unsealed",
    )


async def test_call_rows_are_append_only_on_postgres(gw_any: GatewaySetup) -> None:
    services = gw_any.corral.services
    if not services.db.is_postgres:
        pytest.skip("SQLite has no roles or triggers: verification is the protection there")
    await gw_any.openai().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "kept"}]
    )
    await services.gateway.recorder.flush()
    for statement in (sa.update(gateway_calls).values(cost_micros=0), sa.delete(gateway_calls)):
        with pytest.raises(sa.exc.DBAPIError, match=r"append-only|permission denied"):
            async with services.db.write() as conn:
                await conn.execute(statement)
