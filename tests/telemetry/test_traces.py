"""Traces of real sessions: a real Corral, the OpenCode simulator, both databases, and an OTLP
receiver on loopback standing in for the collector.

Each turn is an ``invoke_agent`` trace whose children are its tool calls, approval waits and
governance decisions, with the exact GenAI semantic-convention names; the collector and
``GET /v1/sessions/{id}/trace`` see the same tree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from corral.domain.events import Event
from corral.store.tables import spans
from corral.telemetry.service import Telemetry
from tests.support.corral import CorralServer, corral_settings, ok, running_corral
from tests.telemetry.otlp import Receiver, otlp_receiver
from tests.telemetry.scenario import eventually, two_turns, walk, world

DEPRECATED = ("gen_ai.system", "gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens")


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Any:
    with otlp_receiver() as received:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", received.url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "corral-test")
        yield received


@pytest.fixture
async def traced(database_url: str, tmp_path: Path, receiver: Receiver) -> AsyncIterator[Any]:
    settings = corral_settings(database_url, tmp_path, pump_grace_seconds=0.5)
    async with running_corral(settings) as server:
        yield server


async def test_turns_are_traces_in_the_store_and_at_the_collector(
    traced: CorralServer, receiver: Receiver, opencode_sim_url: str
) -> None:
    w = await world(traced, opencode_sim_url)
    sid, trace = await two_turns(traced, w)
    assert trace["session_id"] == sid
    first, second = trace["spans"]
    # -- the allowed turn: tool call, the runtime's permission prompt answered by policy ------
    assert first["name"] == "invoke_agent helper" and first["kind"] == "client"
    assert first["parent_id"] is None and first["status"] == "unset"
    a = first["attributes"]
    assert a["gen_ai.operation.name"] == "invoke_agent"
    assert a["gen_ai.provider.name"] == "opencode"
    assert a["gen_ai.agent.name"] == "helper" and a["gen_ai.agent.id"] == w["agent"]["id"]
    assert a["gen_ai.agent.version"] == "1"
    assert a["gen_ai.conversation.id"] == sid and a["session.id"] == sid
    assert a["gen_ai.request.model"] == "mock/mock-model"
    assert a["user.id"] == w["user"]["id"]
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
    assert a["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert a["server.address"] == "127.0.0.1" and isinstance(a["server.port"], int)
    assert a["corral.budget.reserved_micros"] > 0
    assert not any(k in a for k in DEPRECATED)
    names = [c["name"] for c in first["children"]]
    assert names[0] == "decide message.send"  # admission comes first, inside the turn's trace
    assert "execute_tool bash" in names
    tool = next(c for c in first["children"] if c["name"] == "execute_tool bash")
    t = tool["attributes"]
    assert t["gen_ai.operation.name"] == "execute_tool" and t["gen_ai.tool.name"] == "bash"
    assert t["gen_ai.tool.call.id"] and t["gen_ai.tool.type"] == "extension"
    assert t["corral.decision.outcome"] == "allow" and tool["status"] == "unset"
    under_tool = sorted(c["name"] for c in tool["children"])
    assert "await_approval bash" in under_tool and "decide tool.use" in under_tool
    wait = next(c for c in tool["children"] if c["name"] == "await_approval bash")
    assert wait["attributes"]["corral.approval.decision"] == "allow_once"
    assert wait["attributes"]["corral.approval.resolved_by"] == "policy"
    # -- the denied turn: the decision sits on the tool's span, with its policy -----------------
    denied_tool = next(c for c in second["children"] if c["name"] == "execute_tool bash")
    d = denied_tool["attributes"]
    assert denied_tool["status"] == "error" and d["error.type"] == "tool_denied"
    assert d["corral.decision.outcome"] == "deny" and d["corral.decision.code"] == "tool_denied"
    assert (d["corral.policy.id"], d["corral.policy.version"]) == (w["deny"]["id"], 1)
    assert isinstance(d["corral.epoch"], int)
    # (the runtime reports the call before its arguments: the first decision allows it)
    decisions = [c["attributes"] for c in denied_tool["children"] if c["name"] == "decide tool.use"]
    assert decisions[-1]["corral.decision.outcome"] == "deny"
    assert decisions[-1]["corral.policy.id"] == w["deny"]["id"]
    assert decisions[-1]["gen_ai.conversation.id"] == sid
    admission = second["children"][0]["attributes"]
    assert admission["corral.decision.act"] == "message.send"
    assert admission["gen_ai.conversation.id"] == sid
    # -- no content unless the org opts in --------------------------------------------------------
    for span in walk(trace["spans"]):
        assert span["trace_id"] in (first["trace_id"], second["trace_id"])
        for key in ("gen_ai.input.messages", "gen_ai.output.messages",
                    "gen_ai.tool.call.arguments", "gen_ai.tool.call.result"):  # fmt: skip
            assert key not in span["attributes"]
        assert "rm -rf" not in str(span["attributes"]) and "echo hi" not in str(span["attributes"])
    assert first["trace_id"] != second["trace_id"]
    # -- the collector got the same spans, ids, parents and attributes ----------------------------
    stored = {s["span_id"]: s for s in walk(trace["spans"])}

    async def exported() -> bool:
        return set(stored) <= {s.span_id for s in receiver.spans}

    await eventually(exported)
    assert set(receiver.content_types) == {"application/x-protobuf"}
    for got in receiver.spans:
        if got.span_id not in stored:
            continue
        mine = stored[got.span_id]
        assert (got.trace_id, got.parent_id, got.name) == (
            mine["trace_id"],
            mine["parent_id"],
            mine["name"],
        )
        assert got.attributes == mine["attributes"]
        assert got.end_ns >= got.start_ns > 0
        assert got.resource["service.name"] == "corral-test"
    root = next(s for s in receiver.spans if s.span_id == first["span_id"])
    assert root.kind == 3  # SPAN_KIND_CLIENT
    denied = next(s for s in receiver.spans if s.span_id == denied_tool["span_id"])
    assert denied.status_code == 2  # STATUS_CODE_ERROR


async def test_content_is_traced_only_when_the_org_opts_in(
    database_url: str, tmp_path: Path, opencode_sim_url: str
) -> None:
    settings = corral_settings(database_url, tmp_path, pump_grace_seconds=0.5, trace_content=True)
    async with running_corral(settings) as server:
        w = await world(server, opencode_sim_url)
        _sid, trace = await two_turns(server, w)
    first = trace["spans"][0]
    assert "echo hi" in first["attributes"]["gen_ai.input.messages"]
    assert first["attributes"]["gen_ai.output.messages"].startswith('[{"role": "assistant"')
    tool = next(c for c in first["children"] if c["name"] == "execute_tool bash")
    assert "echo hi" in tool["attributes"]["gen_ai.tool.call.arguments"]
    assert tool["attributes"]["gen_ai.tool.call.result"].strip() == "hi"


async def test_the_trace_is_the_sessions_own(traced: CorralServer, opencode_sim_url: str) -> None:
    w = await world(traced, opencode_sim_url)
    sid, _ = await two_turns(traced, w)
    async with traced.admin() as admin:
        team2 = await ok(await admin.post("/v1/teams", json={"name": "other"}), 201)
        user = await ok(await admin.post("/v1/users", json={
            "name": "o", "email": "o@example.com", "team_id": team2["id"], "role": "developer",
        }), 201)  # fmt: skip
        key = await ok(await admin.post("/v1/keys", json={"name": "o", "user_id": user["id"]}), 201)
    async with traced.client(key["key"]) as outsider:
        response = await outsider.get(f"/v1/sessions/{sid}/trace")
        assert response.status_code in (403, 404)
    async with httpx.AsyncClient(base_url=traced.url) as anonymous:
        assert (await anonymous.get(f"/v1/sessions/{sid}/trace")).status_code == 401


async def test_a_turn_taken_over_after_a_crash_lands_in_the_same_trace(
    traced: CorralServer, opencode_sim_url: str
) -> None:
    """Replica B sees only the end of a turn whose start A recorded (and died before tracing):
    it rebuilds the turn from the store, with the ids A would have given it."""
    w = await world(traced, opencode_sim_url)
    sid, trace = await two_turns(traced, w)
    second = trace["spans"][1]
    before = {(s["span_id"], s["parent_id"], s["name"]) for s in walk([second])}
    lost = [s["span_id"] for s in walk([second]) if not s["name"].startswith("decide ")]
    db = traced.services.db
    async with db.write() as conn:
        await conn.execute(sa.delete(spans).where(spans.c.span_id.in_(lost)))
    async with traced.client(w["key"]) as dev:
        page = await ok(await dev.get(f"/v1/sessions/{sid}/events", params={"limit": 200}))
    events = [
        Event(e["session_id"], e["seq"], e["type"], datetime.fromisoformat(e["ts"]), e["data"],
              None, e["native_type"], e["turn_id"], None)
        for e in page["data"] if e["turn_id"] == second["turn_id"]
    ]  # fmt: skip
    after_start = [e for e in events if e.type != "turn.started"][3:]  # joined mid-turn
    replica_b = Telemetry(db, has_pump=lambda _sid: True, grace=0.0)
    replica_b.on_events(sid, after_start)
    await replica_b.flush(everything=True)
    await replica_b.pipeline.aclose()
    async with traced.client(w["key"]) as dev:
        rebuilt = (await ok(await dev.get(f"/v1/sessions/{sid}/trace")))["spans"][1]
    assert {(s["span_id"], s["parent_id"], s["name"]) for s in walk([rebuilt])} == before
    assert rebuilt["trace_id"] == second["trace_id"]
    for key in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.agent.name"):
        assert rebuilt["attributes"][key] == second["attributes"][key]
