"""The A2A adapter against real A2A servers: the test agent on a2a-sdk 1.3.0 (protocol 1.0 and
its 0.3 compat layer) and, where it installs, an agent on a2a-sdk 0.3.26 (0.3 only)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from corral.domain.errors import RuntimeRejected, RuntimeUnreachable
from corral.domain.events import EventDraft, EventType
from corral.runtimes import registry
from corral.runtimes.a2a.adapter import A2AAdapter
from corral.runtimes.a2a.client import pick_protocol, rebase
from corral.runtimes.base import (
    STREAM_RESUMED,
    AgentSpec,
    EventSubscription,
    InputAnswer,
    NativeEvent,
    RuntimeTarget,
    supports_approvals,
    supports_client_input,
)
from corral.sim._server import BackgroundServer
from corral.sim.a2a import create_app
from corral.sim.processes import free_port
from tests.conformance.profiles import Runtime
from tests.support.faults import fault_proxy

SPEC = AgentSpec(name="helper", model=None, instructions=None, tools=[])


@pytest.fixture(params=["a2a_v10_runtime", "a2a_v03_runtime", "a2a_peer_v03_runtime"])
def runtime(request: pytest.FixtureRequest) -> Runtime:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def adapter_for(runtime: Runtime, **config: Any) -> A2AAdapter:
    target = RuntimeTarget(
        "rt", "a2a", runtime.base_url, {**runtime.config, **config}, runtime.credentials
    )
    return A2AAdapter(target)


@pytest.fixture
async def adapter(runtime: Runtime) -> AsyncIterator[A2AAdapter]:
    adapter = adapter_for(runtime)
    yield adapter
    await adapter.aclose()


class Turn:
    """A session subscribed like the pump does it, mapping what arrives."""

    def __init__(self, adapter: A2AAdapter, sid: str, sub: EventSubscription) -> None:
        self.adapter, self.sid, self.sub = adapter, sid, sub
        self.mapper = adapter.mapper()
        self.events = aiter(sub)
        self.natives: list[NativeEvent] = []
        self.drafts: list[EventDraft] = []

    @classmethod
    async def open(cls, adapter: A2AAdapter) -> Turn:
        session = await adapter.create_session(SPEC, title="t")
        return cls(
            adapter, session.native_session_id, await adapter.subscribe(session.native_session_id)
        )

    async def send(self, text: str, turn_id: str = "t1") -> None:
        self.mapper.begin_turn(turn_id)
        await self.adapter.send(self.sid, text, SPEC)

    async def until(self, kind: EventType, timeout: float = 20.0) -> list[EventDraft]:
        start = len(self.drafts)
        while True:
            native = await asyncio.wait_for(anext(self.events), timeout)
            self.natives.append(native)
            if native.type == STREAM_RESUMED:  # what the pump does: reconcile from history
                for event in await self.adapter.history(self.sid):
                    self.drafts += self.mapper.map(event)
            else:
                self.drafts += self.mapper.map(native)
            if any(d.type is kind for d in self.drafts[start:]):
                return self.drafts[start:]


def text_of(drafts: list[EventDraft]) -> str:
    return "".join(
        d.data["content"][0]["text"] for d in drafts if d.type is EventType.MESSAGE_COMPLETED
    )


async def test_capabilities_and_registry() -> None:
    caps = registry.capabilities("a2a")
    assert caps.client_tools and caps.cancel and caps.history and not caps.approvals
    assert not caps.tool_events and not caps.usage
    adapter = registry.build(RuntimeTarget("rt", "a2a", "http://127.0.0.1:1", {}, None))
    answers, approves = supports_client_input(adapter), supports_approvals(adapter)
    await adapter.aclose()
    assert answers and not approves


async def test_health_reads_the_card(adapter: A2AAdapter, runtime: Runtime) -> None:
    health = await adapter.health()
    assert health["healthy"] is True
    assert health["protocol"] == runtime.config.get("protocol", "0.3")


async def test_text_turn_and_history_dedupe(adapter: A2AAdapter) -> None:
    turn = await Turn.open(adapter)
    await turn.send("hello world from corral")
    live = await turn.until(EventType.TURN_COMPLETED)
    assert "Echo: hello world from corral" in text_of(live)
    assert len([d for d in live if d.type is EventType.MESSAGE_DELTA]) >= 3
    assert await adapter.status(turn.sid) == "idle"
    mapper = adapter.mapper()
    mapper.begin_turn("t1")
    backfill = [d for e in await adapter.history(turn.sid) for d in mapper.map(e)]
    assert {d.native_id for d in backfill} <= {d.native_id for d in live}
    assert EventType.TURN_COMPLETED in {d.type for d in backfill}


async def test_second_turn_is_a_new_task_in_the_same_context(adapter: A2AAdapter) -> None:
    turn = await Turn.open(adapter)
    await turn.send("first one")
    await turn.until(EventType.TURN_COMPLETED)
    first_task = adapter._streams.context(turn.sid).task_id
    await turn.send("second one", "t2")
    second = await turn.until(EventType.TURN_COMPLETED)
    assert "Echo: second one" in text_of(second)
    assert adapter._streams.context(turn.sid).task_id != first_task


async def test_input_required_is_answered(adapter: A2AAdapter) -> None:
    turn = await Turn.open(adapter)
    await turn.send("paint the fence [[ask:What colour?]]")
    asked = [
        d for d in await turn.until(EventType.INPUT_REQUESTED) if d.type.value == "input.requested"
    ]
    assert asked[0].data["prompt"] == "What colour?" and asked[0].data["kind"] == "question"
    assert await adapter.status(turn.sid) == "waiting"
    await adapter.answer_input(turn.sid, asked[0].data["request_id"], InputAnswer(text="blue"))
    rest = await turn.until(EventType.TURN_COMPLETED)
    assert "blue" in text_of(rest)
    assert rest[-1].data["stop_reason"] == "end_turn"


async def test_cancel_stops_the_task(adapter: A2AAdapter) -> None:
    turn = await Turn.open(adapter)
    await turn.send("[[slow:4]] a slow answer with several words")
    await turn.until(EventType.MESSAGE_DELTA)
    assert await adapter.status(turn.sid) == "busy"
    await adapter.cancel(turn.sid)
    rest = await turn.until(EventType.TURN_COMPLETED)
    assert rest[-1].data["stop_reason"] == "cancelled"
    assert await adapter.status(turn.sid) == "idle"
    await adapter.cancel(turn.sid)  # nothing left to stop: quietly done


async def test_model_error_fails_the_turn(adapter: A2AAdapter) -> None:
    turn = await Turn.open(adapter)
    await turn.send("[[error:400]] please fail")
    drafts = await turn.until(EventType.TURN_COMPLETED)
    assert [d.type.value for d in drafts] == ["error", "turn.completed"]
    assert drafts[-1].data["stop_reason"] == "error"


async def test_dropped_stream_loses_and_duplicates_nothing(runtime: Runtime) -> None:
    with fault_proxy(runtime.base_url) as (proxy, url):
        adapter = adapter_for(Runtime(runtime.kind, url, runtime.config))
        try:
            turn = await Turn.open(adapter)
            await turn.send("[[slow:3]] a slow answer with several words")
            await turn.until(EventType.MESSAGE_DELTA)
            proxy.drop_streams()
            await turn.until(EventType.TURN_COMPLETED)
        finally:
            await adapter.aclose()
    assert proxy.dropped >= 1
    kinds = [n.type for n in turn.natives]
    assert STREAM_RESUMED in kinds
    if runtime.config.get("protocol") == "1.0":  # re-attached with SubscribeToTask: live again
        after = kinds[kinds.index(STREAM_RESUMED) :]
        assert "artifact-update" in after
    ids = [d.native_id for d in turn.drafts]
    assert len(ids) == len(set(ids)), "no native id twice"
    completed = [d for d in turn.drafts if d.type is EventType.MESSAGE_COMPLETED]
    assert [text_of(completed)] == ["Echo: a slow answer with several words"]
    assert [d.data["stop_reason"] for d in turn.drafts if d.type.value == "turn.completed"] == [
        "end_turn"
    ]


async def test_malformed_frame_is_skipped(runtime: Runtime) -> None:
    from corral.runtimes.sse import malformed_frames

    with fault_proxy(runtime.base_url) as (proxy, url):
        adapter = adapter_for(Runtime(runtime.kind, url, runtime.config))
        try:
            before = malformed_frames["a2a"]
            proxy.inject_malformed()
            turn = await Turn.open(adapter)
            await turn.send("hello world from corral")
            drafts = await turn.until(EventType.TURN_COMPLETED)
        finally:
            await adapter.aclose()
    assert malformed_frames["a2a"] == before + 1
    assert "Echo: hello world from corral" in text_of(drafts)


async def test_restarted_adapter_finds_the_running_task(a2a_v10_runtime: Runtime) -> None:
    """After a Corral restart (a fresh adapter), 1.0's ListTasks finds the context's task:
    the new subscription follows it and history() backfills it."""
    first = adapter_for(a2a_v10_runtime)
    turn = await Turn.open(first)
    await turn.send("[[slow:2]] a slow answer with several words")
    await turn.until(EventType.MESSAGE_DELTA)
    await first.aclose()
    second = adapter_for(a2a_v10_runtime)
    try:
        again = Turn(second, turn.sid, await second.subscribe(turn.sid))
        again.mapper.begin_turn("t1")
        drafts = await again.until(EventType.TURN_COMPLETED)
        assert text_of(drafts) == "Echo: a slow answer with several words"
        backfill = [d for e in await second.history(turn.sid) for d in again.mapper.map(e)]
        assert {d.native_id for d in backfill} <= {d.native_id for d in drafts}
    finally:
        await second.aclose()


async def test_unknown_task_on_0_3_is_a_stream_gap(a2a_v03_runtime: Runtime) -> None:
    adapter = adapter_for(a2a_v03_runtime)
    try:
        history = await adapter.history("corral-never-seen")
        mapper = adapter.mapper()
        mapper.begin_turn("t1")
        drafts = [d for e in history for d in mapper.map(e)]
        assert [d.type for d in drafts] == [EventType.STREAM_GAP]
    finally:
        await adapter.aclose()


async def test_unreachable_agent() -> None:
    adapter = A2AAdapter(RuntimeTarget("rt", "a2a", f"http://127.0.0.1:{free_port()}", {}, None))
    try:
        with pytest.raises(RuntimeUnreachable):
            await adapter.create_session(SPEC, title="t")
    finally:
        await adapter.aclose()


@pytest.fixture(scope="module")
def keyed_agent_url(mock_llm_url: str) -> Iterator[str]:
    with BackgroundServer(create_app(mock_llm_url, api_key="sekrit-key")) as url:
        yield url


@pytest.mark.parametrize("protocol", ["1.0", "0.3"])
async def test_api_key_from_the_card(keyed_agent_url: str, protocol: str) -> None:
    keyed = Runtime("a2a", keyed_agent_url, {"protocol": protocol}, {"api_key": "sekrit-key"})
    adapter = adapter_for(keyed)
    try:
        turn = await Turn.open(adapter)
        await turn.send("hello with a key")
        assert "Echo: hello with a key" in text_of(await turn.until(EventType.TURN_COMPLETED))
    finally:
        await adapter.aclose()
    wrong = adapter_for(Runtime("a2a", keyed_agent_url, {}, {"api_key": "nope"}))
    try:
        session = await wrong.create_session(SPEC, title="t")  # the card itself is public
        with pytest.raises(RuntimeRejected) as info:
            await wrong.send(session.native_session_id, "hi", SPEC)
        assert info.value.extra["http_status"] == 401
        assert "nope" not in info.value.detail
    finally:
        await wrong.aclose()


def test_protocol_choice_and_url() -> None:
    v1 = {"supportedInterfaces": [{"url": "http://x/a2a", "protocolBinding": "JSONRPC",
                                   "protocolVersion": "1.0"}]}  # fmt: skip
    assert pick_protocol(v1, None) == "1.0"
    assert pick_protocol(v1, "0.3") == "0.3"
    assert pick_protocol({"url": "http://x/", "protocolVersion": "0.3.0"}, None) == "0.3"
    assert rebase("http://internal:9/a2a?x=1", "http://127.0.0.1:5") == "http://127.0.0.1:5/a2a?x=1"


async def test_agent_tool_use_arrives_as_a_status_message(a2a_v10_runtime: Runtime) -> None:
    adapter = adapter_for(a2a_v10_runtime)
    try:
        turn = await Turn.open(adapter)
        await turn.send('look it up [[tool:lookup {"q": "x"}]]')
        drafts = await turn.until(EventType.TURN_COMPLETED)
    finally:
        await adapter.aclose()
    messages = [d for d in drafts if d.type is EventType.MESSAGE_COMPLETED]
    assert messages[0].native_id.startswith("msg:")  # type: ignore[union-attr]
    assert text_of(messages[:1]) == 'Calling tool lookup {"q": "x"}'
    assert text_of(messages[1:]).startswith("Tool done: ")
    assert not [d for d in drafts if d.type is EventType.TOOL_CALL]
