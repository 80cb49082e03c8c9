"""The Claude Managed Agents adapter against the simulator: provisioning, turns, approvals,
client tools, cancel, reconnect with backfill, malformed frames and error translation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from corral.domain.errors import RuntimeRejected, RuntimeUnreachable
from corral.domain.events import ApprovalDecision, EventDraft, EventType
from corral.runtimes import sse
from corral.runtimes.base import (
    STREAM_RESUMED,
    AgentSpec,
    InputAnswer,
    NativeEvent,
    RuntimeTarget,
    ToolResult,
)
from corral.runtimes.claude_agents.adapter import ClaudeAgentsAdapter
from corral.sim.claude_agents import SimState
from corral.sim.processes import free_port
from tests.plugins.claude_agents import API_KEY, PRICE

Sim = tuple[str, SimState]
LOOKUP = {
    "name": "lookup",
    "description": "Look a word up on the caller's side.",
    "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}},
}
SPEC = AgentSpec(
    "helper", "claude-sonnet-4-5", "be brief", [],
    {"claude_ask_tools": ["bash"], "claude_custom_tools": [LOOKUP]},
    agent_id="agt_test", version=1,
)  # fmt: skip


def _target(url: str, key: str = API_KEY, **config: Any) -> RuntimeTarget:
    config = {"price": PRICE, "environment_name": "adapter-tests", **config}
    return RuntimeTarget("rt_1", "claude_agents", url, config, {"api_key": key})


@pytest.fixture
async def adapter(claude_agents_sim_url: str) -> AsyncIterator[ClaudeAgentsAdapter]:
    adapter = ClaudeAgentsAdapter(_target(claude_agents_sim_url))
    yield adapter
    await adapter.aclose()


class Turn:
    """A subscribed session and everything mapped from its live stream."""

    def __init__(self, adapter: ClaudeAgentsAdapter, sid: str, sub: Any) -> None:
        self.adapter, self.sid, self.sub = adapter, sid, sub
        self.events = aiter(sub)
        self.mapper = adapter.mapper()
        self.native: list[NativeEvent] = []
        self.drafts: list[EventDraft] = []

    @classmethod
    async def open(cls, adapter: ClaudeAgentsAdapter, spec: AgentSpec = SPEC) -> Turn:
        session = await adapter.create_session(spec, title="t")
        sub = await adapter.subscribe(session.native_session_id)
        return cls(adapter, session.native_session_id, sub)

    async def send(self, text: str, turn_id: str = "turn_1") -> None:
        self.mapper.begin_turn(turn_id)
        await self.adapter.send(self.sid, text, SPEC)

    async def until(
        self, stop: Callable[[EventDraft], bool], timeout: float = 20
    ) -> list[EventDraft]:
        async def read() -> list[EventDraft]:
            got: list[EventDraft] = []
            while True:
                event = await anext(self.events)
                self.native.append(event)
                drafts = self.mapper.map(event)
                got += drafts
                self.drafts += drafts
                if any(stop(d) for d in drafts):
                    return got

        return await asyncio.wait_for(read(), timeout)

    async def close(self) -> None:
        await self.sub.aclose()


def ended(draft: EventDraft) -> bool:
    return draft.type is EventType.TURN_COMPLETED


def of(drafts: list[EventDraft], kind: EventType) -> list[dict[str, Any]]:
    return [d.data for d in drafts if d.type is kind]


async def test_provisioning_is_idempotent_across_restarts(claude_agents_sim: Sim) -> None:
    url, sim = claude_agents_sim
    spec = AgentSpec("prov", None, None, ["bash", "read"], {}, agent_id="agt_prov", version=1)
    first = ClaudeAgentsAdapter(_target(url, environment_name="prov-env"))
    a = await first.create_session(spec, title="a")
    b = await first.create_session(spec, title="b")
    await first.aclose()
    again = ClaudeAgentsAdapter(_target(url, environment_name="prov-env"))  # a Corral restart
    c = await again.create_session(spec, title="c")
    v2 = await again.create_session(
        AgentSpec("prov", None, None, [], {}, agent_id="agt_prov", version=2), title="d"
    )
    await again.aclose()
    sessions = [sim.store.session(s.native_session_id).info for s in (a, b, c, v2)]
    assert len({s["agent"]["id"] for s in sessions[:3]}) == 1
    assert sessions[3]["agent"]["id"] != sessions[0]["agent"]["id"]
    assert len({s["environment_id"] for s in sessions}) == 1
    assert [e["name"] for e in sim.store.environments.values()].count("prov-env") == 1
    toolset = sessions[0]["agent"]["tools"][0]
    enabled = {c["name"] for c in toolset["configs"] if c["enabled"]}
    assert enabled == {"bash", "read"} and toolset["default_config"]["enabled"] is False
    assert sessions[0]["agent"]["model"]["id"] == "claude-sonnet-4-5"  # the default model


async def test_text_turn_live_and_history(adapter: ClaudeAgentsAdapter) -> None:
    turn = await Turn.open(adapter)
    await turn.send("hello wide world")
    await turn.until(ended)
    deltas = of(turn.drafts, EventType.MESSAGE_DELTA)
    assert "".join(d["text"] for d in deltas) == "Echo: hello wide world" and len(deltas) >= 3
    assert of(turn.drafts, EventType.USAGE)[0]["cost_usd"] > 0
    assert of(turn.drafts, EventType.TURN_COMPLETED)[0]["stop_reason"] == "end_turn"
    fresh = adapter.mapper()
    fresh.begin_turn("turn_1")
    backfill = [d for e in await adapter.history(turn.sid) for d in fresh.map(e)]
    live_ids = {d.native_id for d in turn.drafts if d.type is not EventType.MESSAGE_DELTA}
    assert {d.native_id for d in backfill} == live_ids
    assert await adapter.status(turn.sid) == "idle"
    await turn.send("second one", "turn_2")
    await turn.until(ended)
    assert await adapter.user_inputs(turn.sid) == ["hello wide world", "second one"]
    # History is the current turn only.
    assert next(e.type for e in await adapter.history(turn.sid)) == "user.message"
    await turn.close()


@pytest.mark.parametrize("decision", [ApprovalDecision.ALLOW_ONCE, ApprovalDecision.DENY])
async def test_approval(adapter: ClaudeAgentsAdapter, decision: ApprovalDecision) -> None:
    turn = await Turn.open(adapter)
    await turn.send('[[tool:bash {"command":"echo hi"}]]')
    asked = await turn.until(lambda d: d.type is EventType.APPROVAL_REQUESTED)
    approval = of(asked, EventType.APPROVAL_REQUESTED)[0]
    await asyncio.sleep(0.2)  # let the session go idle(requires_action)
    assert await adapter.status(turn.sid) == "waiting"
    await adapter.resolve_approval(turn.sid, approval["native_approval_id"], decision, "no")
    await turn.until(ended)
    resolved = of(turn.drafts, EventType.APPROVAL_RESOLVED)
    assert resolved[0]["decision"] == decision.value
    result = of(turn.drafts, EventType.TOOL_RESULT)[0]
    assert result["is_error"] is (decision is ApprovalDecision.DENY)
    if decision is ApprovalDecision.ALLOW_ONCE:
        assert result["output"].strip() == "hi"
    await turn.close()


@pytest.mark.parametrize("by_text", [False, True])
async def test_client_tool_input(adapter: ClaudeAgentsAdapter, by_text: bool) -> None:
    turn = await Turn.open(adapter)
    await turn.send('[[tool:lookup {"word":"corral"}]]')
    asked = await turn.until(lambda d: d.type is EventType.INPUT_REQUESTED)
    request = of(asked, EventType.INPUT_REQUESTED)[0]
    assert request["kind"] == "client_tool" and len(request["call_ids"]) == 1
    assert await adapter.status(turn.sid) == "waiting"
    if by_text:
        answer = InputAnswer(text="a pen for cattle")
    else:
        answer = InputAnswer(tool_results=(ToolResult(request["call_ids"][0], "a pen for cattle"),))
    await adapter.answer_input(turn.sid, request["request_id"], answer)
    await turn.until(ended)
    completed = of(turn.drafts, EventType.MESSAGE_COMPLETED)
    assert completed[-1]["content"][0]["text"] == "Tool done: a pen for cattle"
    await turn.close()


async def test_cancel_mid_turn(adapter: ClaudeAgentsAdapter) -> None:
    turn = await Turn.open(adapter)
    await turn.send("[[slow:4]] a slow answer here")
    await turn.until(lambda d: d.type is EventType.MESSAGE_DELTA)
    await adapter.cancel(turn.sid)
    await turn.until(ended, timeout=5)
    assert of(turn.drafts, EventType.TURN_COMPLETED)[0]["stop_reason"] == "cancelled"
    assert await adapter.status(turn.sid) == "idle"
    await turn.close()


async def test_reconnect_backfills_exactly_once(
    adapter: ClaudeAgentsAdapter, claude_agents_sim: Sim
) -> None:
    sim = claude_agents_sim[1]
    turn = await Turn.open(adapter)
    await turn.send("[[slow:1.5]] one two three four five six seven")
    await turn.until(lambda d: d.type is EventType.MESSAGE_DELTA)
    assert sim.drop_streams(turn.sid) == 1

    resumed = asyncio.Event()
    original = turn.mapper.map

    def watch(event: NativeEvent) -> list[EventDraft]:
        if event.type == STREAM_RESUMED:
            resumed.set()
        return original(event)

    turn.mapper.map = watch  # type: ignore[method-assign]
    await turn.until(lambda d: resumed.is_set() or ended(d))
    assert resumed.is_set()
    # What the pump does on STREAM_RESUMED: map the history with the same mapper.
    for event in await adapter.history(turn.sid):
        turn.drafts += original(event)
    if not of(turn.drafts, EventType.TURN_COMPLETED):
        await turn.until(ended)
    fresh = adapter.mapper()
    fresh.begin_turn("turn_1")
    truth = {d.native_id for e in await adapter.history(turn.sid) for d in fresh.map(e)}
    kept = {d.native_id for d in turn.drafts if d.type is not EventType.MESSAGE_DELTA}
    assert kept == truth  # nothing lost; duplicates share ids, so the recorder keeps one
    assert len(of(turn.drafts, EventType.TURN_COMPLETED)) >= 1
    await turn.close()


async def test_malformed_and_error_frames_do_not_end_the_subscription(
    adapter: ClaudeAgentsAdapter, claude_agents_sim: Sim
) -> None:
    sim = claude_agents_sim[1]
    before = sse.malformed_frames["claude_agents"]
    sim.inject_frames = ["event: agent.message\ndata: {not json\n\n"]
    turn = await Turn.open(adapter)
    await turn.send("still works")
    await turn.until(ended)
    assert sse.malformed_frames["claude_agents"] == before + 1
    # An ``event: error`` frame ends that connection; the subscription reconnects.
    sim.inject_frames = [
        'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"busy"}}\n\n'
    ]
    sim.drop_streams(turn.sid)
    for _ in range(2):  # the reconnect that read the error frame, then the next one
        while (await asyncio.wait_for(anext(turn.events), 10)).type != STREAM_RESUMED:
            pass
    await turn.send("after the error", "turn_2")
    await turn.until(ended)
    assert of(turn.drafts, EventType.TURN_COMPLETED)[-1]["turn_id"] == "turn_2"
    await turn.close()


async def test_errors_are_translated(
    claude_agents_sim_url: str, adapter: ClaudeAgentsAdapter
) -> None:
    wrong = ClaudeAgentsAdapter(_target(claude_agents_sim_url, key="nope"))
    with pytest.raises(RuntimeRejected) as denied:
        await wrong.create_session(SPEC, title="x")
    assert denied.value.extra["http_status"] == 401 and "nope" not in denied.value.detail
    await wrong.aclose()
    with pytest.raises(RuntimeRejected) as missing:
        await adapter.send("sesn_missing", "hi", SPEC)
    assert missing.value.extra["http_status"] == 404
    with pytest.raises(RuntimeRejected):
        await adapter.subscribe("sesn_missing")
    gone = ClaudeAgentsAdapter(_target(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(RuntimeUnreachable):
        await gone.health()
    await gone.aclose()
    assert (await adapter.health())["healthy"] is True


async def test_upstream_error_ends_turn_as_error(adapter: ClaudeAgentsAdapter) -> None:
    turn = await Turn.open(adapter)
    await turn.send("[[error:400]] please fail")
    await turn.until(ended)
    assert of(turn.drafts, EventType.ERROR)[0]["code"] == "model_request_failed_error"
    assert of(turn.drafts, EventType.TURN_COMPLETED)[0]["stop_reason"] == "error"
    await turn.close()


async def test_deleted_environment_is_provisioned_again(claude_agents_sim: Sim) -> None:
    url, sim = claude_agents_sim
    adapter = ClaudeAgentsAdapter(_target(url, environment_name="doomed-env"))
    first = await adapter.create_session(SPEC, title="a")
    env_id = sim.store.session(first.native_session_id).info["environment_id"]
    del sim.store.environments[env_id]  # someone deleted it on the service
    second = await adapter.create_session(SPEC, title="b")
    assert sim.store.session(second.native_session_id).info["environment_id"] != env_id
    await adapter.aclose()
