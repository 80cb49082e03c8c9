"""The LangGraph adapter against a real ``langgraph dev`` (langgraph-api 0.16.7) serving a Deep
Agents graph (deepagents 0.7.32) whose model is the mock LLM (fixture ``real_langgraph_url``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from corral.domain.errors import RuntimeRejected, RuntimeUnreachable
from corral.domain.events import ApprovalDecision, EventDraft, EventType
from corral.runtimes.base import (
    STREAM_RESUMED,
    AgentSpec,
    EventSubscription,
    InputAnswer,
    NativeEvent,
    RuntimeTarget,
)
from corral.runtimes.langgraph.adapter import LangGraphAdapter
from corral.runtimes.langgraph.mapping import RUN_END, LangGraphMapper
from corral.runtimes.sse import SseFrame
from corral.sim.processes import free_port

SPEC = AgentSpec(name="t", model=None, instructions=None, tools=[])


@pytest.fixture
async def adapter(real_langgraph_url: str) -> AsyncIterator[LangGraphAdapter]:
    target = RuntimeTarget("rt", "langgraph", real_langgraph_url, {"assistant_id": "agent"}, None)
    adapter = LangGraphAdapter(target)
    yield adapter
    await adapter.aclose()


async def _until_end(sub: EventSubscription, out: list[NativeEvent]) -> NativeEvent:
    events = aiter(sub)
    async with asyncio.timeout(60):
        while True:
            event = await anext(events)
            out.append(event)
            if event.type == RUN_END:
                return event


def _map(events: list[NativeEvent]) -> list[EventDraft]:
    mapper = LangGraphMapper()
    mapper.begin_turn("turn_1")
    return [d for e in events for d in mapper.map(e)]


async def _open(adapter: LangGraphAdapter) -> tuple[str, EventSubscription]:
    session = await adapter.create_session(SPEC, title="test")
    sub = await adapter.subscribe(session.native_session_id)
    return session.native_session_id, sub


async def test_text_turn_history_and_status(adapter: LangGraphAdapter) -> None:
    assert (await adapter.health())["ok"] is True
    tid, sub = await _open(adapter)
    events: list[NativeEvent] = []
    await adapter.send(tid, "hello there dear agent", SPEC)
    await _until_end(sub, events)
    drafts = _map(events)
    deltas = [d for d in drafts if d.type is EventType.MESSAGE_DELTA]
    assert len(deltas) >= 3
    assert drafts[-1].type is EventType.TURN_COMPLETED
    assert await adapter.status(tid) == "idle"
    live_ids = {d.native_id for d in drafts}
    backfill = _map(await adapter.history(tid))
    assert backfill and {d.native_id for d in backfill} <= live_ids
    assert await adapter.user_inputs(tid) == ["hello there dear agent"]
    await sub.aclose()


async def test_busy_thread_rejects_a_second_input_and_cancel_stops_the_run(
    adapter: LangGraphAdapter,
) -> None:
    tid, sub = await _open(adapter)
    events: list[NativeEvent] = []
    await adapter.send(tid, "take your time [[slow:6]]", SPEC)
    await asyncio.sleep(1.0)
    assert await adapter.status(tid) == "busy"
    with pytest.raises(RuntimeRejected) as busy:
        await adapter.send(tid, "me too", SPEC)
    assert busy.value.extra.get("http_status") == 409
    await adapter.cancel(tid)
    end = await _until_end(sub, events)
    assert end.payload["status"] == "interrupted"
    assert _map(events)[-1].data["stop_reason"] == "cancelled"
    await sub.aclose()


@pytest.mark.parametrize("decision", [ApprovalDecision.ALLOW_ONCE, ApprovalDecision.DENY])
async def test_approval_round_trip(adapter: LangGraphAdapter, decision: ApprovalDecision) -> None:
    tid, sub = await _open(adapter)
    events: list[NativeEvent] = []
    await adapter.send(tid, 'mail [[tool:send_email {"to":"a@b.c","body":"hi"}]]', SPEC)
    await _until_end(sub, events)
    asked = [d for d in _map(events) if d.type is EventType.APPROVAL_REQUESTED]
    assert len(asked) == 1 and await adapter.status(tid) == "waiting"
    # History alone (a Corral that missed the stream) finds the same pending approval.
    backfill = _map(await adapter.history(tid))
    assert asked[0].native_id in {d.native_id for d in backfill}
    native_approval_id = asked[0].data["native_approval_id"]
    await adapter.resolve_approval(tid, native_approval_id, decision, "not today")
    await _until_end(sub, events)
    drafts = _map(events)
    result = next(d for d in drafts if d.type is EventType.TOOL_RESULT)
    assert ("rejected" in result.data["output"]) is (decision is ApprovalDecision.DENY)
    assert drafts[-1].type is EventType.TURN_COMPLETED
    assert await adapter.status(tid) == "idle"
    await sub.aclose()


async def test_plain_interrupt_is_answered_with_text(adapter: LangGraphAdapter) -> None:
    tid, sub = await _open(adapter)
    events: list[NativeEvent] = []
    await adapter.send(tid, 'ask [[tool:ask_user {"question":"Which city?"}]]', SPEC)
    await _until_end(sub, events)
    asked = next(d for d in _map(events) if d.type is EventType.INPUT_REQUESTED)
    await adapter.answer_input(tid, asked.data["request_id"], InputAnswer(text="Lyon"))
    await _until_end(sub, events)
    result = next(d for d in _map(events) if d.type is EventType.TOOL_RESULT)
    assert result.data["output"] == "The user answered: Lyon"
    await sub.aclose()


async def test_cancel_while_waiting_ends_the_turn(adapter: LangGraphAdapter) -> None:
    tid, sub = await _open(adapter)
    events: list[NativeEvent] = []
    await adapter.send(tid, 'mail [[tool:send_email {"to":"a@b.c","body":"hi"}]]', SPEC)
    await _until_end(sub, events)
    await adapter.cancel(tid)
    await _until_end(sub, events)
    assert _map(events)[-1].data["stop_reason"] == "cancelled"
    # The thread takes the next input despite the unanswered interrupt.
    await adapter.send(tid, "hello again friend", SPEC)
    more: list[NativeEvent] = []
    await _until_end(sub, more)
    assert _map(more)[-1].data["stop_reason"] == "end_turn"
    await sub.aclose()


async def test_dropped_stream_rejoins_without_loss_or_duplicates(
    adapter: LangGraphAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_join = adapter._client.join
    calls = 0

    async def flaky(tid: str, rid: str, last: str) -> AsyncIterator[SseFrame]:
        nonlocal calls
        calls += 1
        seen = 0
        async for frame in real_join(tid, rid, last):
            yield frame
            seen += 1
            if calls == 1 and seen == 5:
                raise RuntimeUnreachable("simulated drop")

    monkeypatch.setattr(adapter._client, "join", flaky)
    tid, sub = await _open(adapter)
    events: list[NativeEvent] = []
    await adapter.send(tid, "one two three four five six seven eight [[slow:1.5]]", SPEC)
    await _until_end(sub, events)
    assert calls >= 2 and any(e.type == STREAM_RESUMED for e in events)
    drafts = _map(events)
    ids = [d.native_id for d in drafts if d.type is EventType.MESSAGE_DELTA]
    assert len(ids) == len(set(ids))
    text = "".join(d.data["text"] for d in drafts if d.type is EventType.MESSAGE_DELTA)
    done = next(d for d in drafts if d.type is EventType.MESSAGE_COMPLETED)
    assert text == done.data["content"][0]["text"]
    await sub.aclose()


async def test_unknown_assistant_is_rejected(real_langgraph_url: str) -> None:
    target = RuntimeTarget("rt", "langgraph", real_langgraph_url, {"assistant_id": "nope"}, None)
    adapter = LangGraphAdapter(target)
    try:
        session = await adapter.create_session(SPEC, title="x")
        with pytest.raises(RuntimeRejected) as rejected:
            await adapter.send(session.native_session_id, "hi", SPEC)
        assert rejected.value.extra.get("http_status") in (404, 422)
    finally:
        await adapter.aclose()


async def test_unreachable_runtime() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    creds: dict[str, Any] = {"api_key": "sekret"}
    adapter = LangGraphAdapter(RuntimeTarget("rt", "langgraph", url, {}, creds))
    try:
        assert adapter._client._http.headers["x-api-key"] == "sekret"
        with pytest.raises(RuntimeUnreachable) as down:
            await adapter.health()
        assert "sekret" not in str(down.value)
    finally:
        await adapter.aclose()
