"""Each model call is a ``chat {model}`` span in the caller's trace, and an audit record."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
import sqlalchemy as sa

from corral.audit.service import verify_database
from corral.store.tables import audit_records, gateway_calls, spans
from tests.gateway.conftest import GatewaySetup
from tests.support.corral import ok
from tests.support.fleet import make_agent, make_runtime, make_team, make_user
from tests.telemetry.otlp import Receiver, otlp_receiver
from tests.telemetry.scenario import eventually

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with otlp_receiver() as received:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", received.url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        yield received


async def test_a_call_is_a_child_span_of_the_callers_trace(
    receiver: Receiver, gw: GatewaySetup, opencode_sim_url: str
) -> None:
    corral = gw.corral
    team = await make_team(corral, "tracers")
    dev = await make_user(corral, team["id"], "developer", "dev@trace.io")
    agent = await make_agent(
        corral, dev["key"], (await make_runtime(corral, opencode_sim_url))["id"]
    )
    async with corral.client(dev["key"]) as client:
        session = await ok(await client.post("/v1/sessions", json={"agent_id": agent["id"]}), 201)
        minted = await ok(await client.post(f"/v1/sessions/{session['id']}/gateway-key"), 201)
    runtime = gw.openai(minted["key"], default_headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
    await runtime.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "[[usage:12,3]] hi"}]
    )
    with pytest.raises(openai.RateLimitError):  # the upstream's 429, passed on: an error span
        await runtime.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "[[fail:429]] no"}]
        )
    await corral.services.gateway.recorder.flush()
    async with corral.admin() as admin:
        trace = await ok(await admin.get(f"/v1/sessions/{session['id']}/trace"))
    chats = [s for s in trace["spans"] if s["name"] == "chat gpt-4o-mini"]
    assert len(chats) == 2, trace
    span, failed = sorted(chats, key=lambda s: s["start"])
    assert span["trace_id"] == TRACE and span["parent_id"] == PARENT
    assert span["kind"] == "client" and span["status"] == "unset"
    attrs = span["attributes"]
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == "mock-model"
    assert attrs["gen_ai.request.max_tokens"] == 4096  # injected: the call had no bound
    assert attrs["gen_ai.usage.input_tokens"] == 12 and attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["server.address"] == "127.0.0.1" and attrs["http.response.status_code"] == 200
    assert attrs["session.id"] == session["id"] and attrs["gen_ai.agent.id"] == agent["id"]
    assert "gen_ai.system" not in attrs and "prompt_tokens" not in str(attrs)
    assert failed["status"] == "error" and failed["attributes"]["http.response.status_code"] == 429
    # One durable write per call: the span is built from the call's row, not stored twice.
    async with corral.services.db.read() as conn:
        stored = (await conn.execute(sa.select(sa.func.count()).select_from(spans)
                                     .where(spans.c.trace_id == TRACE))).scalar_one()  # fmt: skip
    assert stored == 0
    # A row from before calls carried span ids (its span was stored in ``spans`` then) is not
    # made into a second, id-less span.
    async with corral.services.db.write() as conn:
        row = (await conn.execute(sa.select(gateway_calls).where(
            gateway_calls.c.session_id == session["id"]).limit(1))).one()._asdict()  # fmt: skip
        await conn.execute(sa.insert(gateway_calls).values(
            {**row, "id": row["id"] + "x", "span_id": None, "parent_span_id": None}))  # fmt: skip
    async with corral.admin() as admin:
        again = await ok(await admin.get(f"/v1/sessions/{session['id']}/trace"))
    assert len([s for s in again["spans"] if s["name"] == "chat gpt-4o-mini"]) == 2

    async def exported() -> bool:
        return {span["span_id"], failed["span_id"]} <= {s.span_id for s in receiver.spans}

    await eventually(exported)
    got = next(s for s in receiver.spans if s.span_id == span["span_id"])
    assert (got.trace_id, got.parent_id, got.name) == (TRACE, PARENT, "chat gpt-4o-mini")
    assert got.attributes == attrs and got.kind == 3  # SPAN_KIND_CLIENT


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
