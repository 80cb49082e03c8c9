"""The Cursor adapter against the simulated Cursor API (proved by ``@cursor/sdk`` 1.0.32)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from corral.domain.errors import RuntimeRejected, RuntimeUnreachable
from corral.domain.events import EventDraft, EventType
from corral.runtimes import registry
from corral.runtimes.base import STREAM_RESUMED, AgentSpec, EventSubscription, RuntimeTarget
from corral.runtimes.cursor.adapter import CursorAdapter, create_body
from corral.runtimes.cursor.mapping import CursorMapper
from corral.sim._server import BackgroundServer
from corral.sim.cursor import create_app
from corral.sim.processes import free_port
from tests.plugins.cursor import CURSOR_API_KEY, sim_config

SPEC = AgentSpec(
    name="helper",
    model="mock/mock-model",
    instructions=None,
    tools=[],
    metadata={"cursor": {"repos": [{"url": "https://github.com/corral/sim-repo"}]}},
    agent_id="agt_1",
    version=3,
)


def make_adapter(url: str, key: str = CURSOR_API_KEY) -> CursorAdapter:
    target = RuntimeTarget("rt_1", "cursor", url, {}, {"api_key": key})
    adapter = registry.build(target)
    assert isinstance(adapter, CursorAdapter)
    return adapter


@pytest.fixture
async def adapter(cursor_sim_url: str) -> AsyncIterator[CursorAdapter]:
    adapter = make_adapter(cursor_sim_url)
    yield adapter
    await adapter.aclose()


class Turn:
    """Maps a subscription's events for one session, turn by turn, like the pump does."""

    def __init__(self, adapter: CursorAdapter, sub: EventSubscription, sid: str) -> None:
        self.adapter, self.sub, self.sid = adapter, sub, sid
        self.mapper = adapter.mapper()
        self.events = aiter(sub)
        self.resumed = 0

    async def run(self, text: str, turn_id: str, *, until_delta: bool = False) -> list[EventDraft]:
        self.mapper.begin_turn(turn_id)
        await self.adapter.send(self.sid, text, SPEC)
        return await self.collect(until_delta=until_delta)

    async def collect(self, *, until_delta: bool = False) -> list[EventDraft]:
        drafts: list[EventDraft] = []
        async with asyncio.timeout(30):
            while True:
                event = await anext(self.events)
                if event.type == STREAM_RESUMED:
                    self.resumed += 1
                    for native in await self.adapter.history(self.sid):
                        drafts += self.mapper.map(native)
                    continue
                drafts += self.mapper.map(event)
                if until_delta and any(d.type is EventType.MESSAGE_DELTA for d in drafts):
                    return drafts
                if any(d.type is EventType.TURN_COMPLETED for d in drafts):
                    return drafts


@contextlib.asynccontextmanager
async def session(adapter: CursorAdapter) -> AsyncIterator[Turn]:
    native = await adapter.create_session(SPEC, title="adapter test")
    sub = await adapter.subscribe(native.native_session_id)
    try:
        yield Turn(adapter, sub, native.native_session_id)
    finally:
        await sub.aclose()


def of(drafts: list[EventDraft], kind: EventType) -> list[dict[str, Any]]:
    return [d.data for d in drafts if d.type is kind]


def text(drafts: list[EventDraft]) -> str:
    return "".join(c["content"][0]["text"] for c in of(drafts, EventType.MESSAGE_COMPLETED))


def unique(drafts: list[EventDraft]) -> dict[str, EventDraft]:
    """What the recorder would store: the first draft of each native id."""
    out: dict[str, EventDraft] = {}
    for d in drafts:
        out.setdefault(str(d.native_id), d)
    return out


def test_create_body_carries_the_settings() -> None:
    spec = AgentSpec(
        "a",
        "mock/mock-model",
        "Be brief.",
        [],
        {"cursor": {"mode": "plan", "auto_create_pr": True}},
        "agt",
        2,
    )
    body = create_body("bc-x", "hi", spec, "title")
    assert body["prompt"] == {"text": "Be brief.\n\nhi"}
    assert body["model"] == {"id": "mock-model"} and body["mode"] == "plan"
    assert body["autoCreatePR"] is True and body["name"] == "title"
    assert body["metadata"] == {
        "corral_agent_id": "agt",
        "corral_agent_version": "2",
        "corral_prompt_prefix_chars": str(len("Be brief.\n\n")),
    }


async def test_delivery_check_strips_the_instructions(adapter: CursorAdapter) -> None:
    spec = replace(SPEC, instructions="Answer tersely.")
    native = await adapter.create_session(spec, title="with instructions")
    sub = await adapter.subscribe(native.native_session_id)
    try:
        turn = Turn(adapter, sub, native.native_session_id)
        turn.mapper.begin_turn("t1")
        await adapter.send(native.native_session_id, "hello there", spec)
        assert "Answer tersely." in text(await turn.collect())
        assert await adapter.user_inputs(native.native_session_id) == ["hello there"]
    finally:
        await sub.aclose()


async def test_first_message_creates_the_agent_later_ones_runs(
    adapter: CursorAdapter, cursor_sim_app: Any
) -> None:
    async with session(adapter) as turn:
        first = await turn.run("hello world from corral", "t1")
        assert len(of(first, EventType.MESSAGE_DELTA)) >= 3
        assert text(first) == "Echo: hello world from corral"
        assert of(first, EventType.TURN_COMPLETED)[0]["stop_reason"] == "end_turn"
        assert of(first, EventType.USAGE)[0]["input_tokens"] > 0
        second = await turn.run("and a second one", "t2")
        assert text(second) == "Echo: and a second one"
        agent = cursor_sim_app.state.sim.store.agents[turn.sid]
        assert len(agent.runs) == 2 and agent.repos == [
            {"url": "https://github.com/corral/sim-repo"}
        ]
        assert agent.metadata == {"corral_agent_id": "agt_1", "corral_agent_version": "3"}
        assert await adapter.status(turn.sid) == "idle"
        inputs = await adapter.user_inputs(turn.sid)
        assert inputs == ["hello world from corral", "and a second one"]


async def test_tool_call_and_history_reproduce_the_live_ids(adapter: CursorAdapter) -> None:
    async with session(adapter) as turn:
        live = await turn.run('[[tool:run_terminal_cmd {"command":"echo hi"}]] go', "t1")
        (call,) = of(live, EventType.TOOL_CALL)
        (result,) = of(live, EventType.TOOL_RESULT)
        assert call["name"] == "run_terminal_cmd" and result["call_id"] == call["call_id"]
        assert result["is_error"] is False
        fresh = CursorMapper()
        fresh.begin_turn("t1")
        backfill = [d for e in await adapter.history(turn.sid) for d in fresh.map(e)]
        assert [d.native_id for d in backfill] == [d.native_id for d in live]


async def test_cancel_mid_turn(adapter: CursorAdapter) -> None:
    async with session(adapter) as turn:
        head = await turn.run("[[slow:5]] a slow answer with several words", "t1", until_delta=True)
        assert await adapter.status(turn.sid) == "busy"
        await adapter.cancel(turn.sid)
        rest = await turn.collect()
        assert of(head + rest, EventType.TURN_COMPLETED)[0]["stop_reason"] == "cancelled"
        await adapter.cancel(turn.sid)  # already over: 409 run_not_cancellable is swallowed


async def test_upstream_error(adapter: CursorAdapter) -> None:
    async with session(adapter) as turn:
        drafts = await turn.run("[[error:400]] please fail", "t1")
        assert [d.type for d in drafts] == [EventType.ERROR, EventType.TURN_COMPLETED]
        assert drafts[1].data["stop_reason"] == "error"


async def test_dropped_stream_resumes_without_loss_or_duplicates(
    adapter: CursorAdapter, cursor_sim_url: str
) -> None:
    async with session(adapter) as turn:
        head = await turn.run("[[slow:2]] a slow answer with several words", "t1", until_delta=True)
        async with httpx.AsyncClient() as http:
            await http.post(cursor_sim_url + "/__sim/drop_streams")
        drafts = head + await turn.collect()
        assert turn.resumed >= 1
        stored = unique(drafts)
        deltas = [d.data["text"] for d in stored.values() if d.type is EventType.MESSAGE_DELTA]
        assert "".join(deltas) == "Echo: a slow answer with several words"
        assert len(of(list(stored.values()), EventType.TURN_COMPLETED)) == 1


@pytest.fixture(scope="module")
def short_retention_url(mock_llm_url: str) -> Iterator[str]:
    with BackgroundServer(create_app(sim_config(mock_llm_url, stream_retention_s=0.2))) as url:
        yield url


async def test_expired_stream_history_is_a_gap_plus_the_result(short_retention_url: str) -> None:
    adapter = make_adapter(short_retention_url)
    try:
        async with session(adapter) as turn:
            await turn.run("hello world from corral", "t1")
            await asyncio.sleep(0.5)
            fresh = CursorMapper()
            fresh.begin_turn("t1")
            drafts = [d for e in await adapter.history(turn.sid) for d in fresh.map(e)]
            assert [d.type for d in drafts] == [
                EventType.STREAM_GAP,
                EventType.MESSAGE_COMPLETED,
                EventType.TURN_COMPLETED,
            ]
            assert text(drafts) == "Echo: hello world from corral"
    finally:
        await adapter.aclose()


async def test_history_before_the_first_message_is_empty(adapter: CursorAdapter) -> None:
    native = await adapter.create_session(SPEC, title="nothing sent")
    assert await adapter.history(native.native_session_id) == []
    assert await adapter.status(native.native_session_id) == "idle"
    assert await adapter.user_inputs(native.native_session_id) == []


async def test_bad_key_and_unreachable_runtime(cursor_sim_url: str) -> None:
    bad = make_adapter(cursor_sim_url, key="wrong")
    with pytest.raises(RuntimeRejected) as rejected:
        await bad.health()
    assert rejected.value.extra["http_status"] == 401 and "wrong" not in rejected.value.detail
    await bad.aclose()
    gone = make_adapter(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RuntimeUnreachable):
        await gone.send("bc-00000000-0000-4000-8000-000000000000", "hi", SPEC)
    await gone.aclose()


def test_capabilities() -> None:
    caps = registry.capabilities("cursor")
    assert caps.approvals is False and caps.client_tools is False
    assert caps.stream_resume and caps.history and caps.cancel
