"""The Hermes adapter against the real API server of hermes-agent 0.19.0 (on the mock LLM)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, cast

import pytest

from corral.domain.errors import RuntimeRejected, RuntimeUnreachable
from corral.domain.events import ApprovalDecision, EventDraft, EventType
from corral.runtimes.base import (
    STREAM_RESUMED,
    AgentSpec,
    EventSubscription,
    RuntimeAdapter,
    RuntimeTarget,
    supports_approvals,
    supports_delivery_check,
)
from corral.runtimes.hermes.adapter import HermesAdapter
from corral.runtimes.hermes.mapping import HermesMapper
from corral.runtimes.sse import malformed_frames
from corral.sim.processes import free_port
from tests.plugins.hermes import API_KEY
from tests.support.faults import FaultProxy, fault_proxy

SPEC = AgentSpec(name="helper", model="mock/mock-model", instructions=None, tools=[])
DANGEROUS = 'remove it [[tool:terminal {"command":"rm -rf /tmp/corral-hermes-test-dir"}]]'


def adapter_for(url: str, key: str | None = API_KEY) -> HermesAdapter:
    creds = {"api_key": key} if key else None
    return HermesAdapter(RuntimeTarget("rt_1", "hermes", url, {}, creds))


@pytest.fixture
async def hermes(real_hermes_url: str) -> AsyncIterator[HermesAdapter]:
    adapter = adapter_for(real_hermes_url)
    yield adapter
    await adapter.aclose()


@pytest.fixture
def proxy(real_hermes_url: str) -> Iterator[tuple[FaultProxy, str]]:
    with fault_proxy(real_hermes_url) as pair:
        yield pair


class Turn:
    """One session: subscribe first, send, map what arrives the way the pump does."""

    def __init__(self, adapter: HermesAdapter, sid: str, sub: EventSubscription) -> None:
        self.adapter, self.sid, self.sub = adapter, sid, sub
        self.mapper = HermesMapper()
        self.drafts: list[EventDraft] = []
        self.seen: set[str] = set()
        self.resumed = 0
        self._events = aiter(sub)

    @classmethod
    async def open(cls, adapter: HermesAdapter, sid: str | None = None) -> Turn:
        if sid is None:
            sid = (await adapter.create_session(SPEC, title="adapter test")).native_session_id
        return cls(adapter, sid, await adapter.subscribe(sid))

    async def send(self, text: str, turn_id: str = "trn_1") -> None:
        self.mapper.begin_turn(turn_id)
        await self.adapter.send(self.sid, text, SPEC)

    def record(self, drafts: list[EventDraft]) -> None:
        for draft in drafts:
            if draft.native_id not in self.seen:
                self.seen.add(str(draft.native_id))
                self.drafts.append(draft)

    async def until(self, done: Callable[[EventDraft], bool], timeout: float = 60) -> None:
        async with asyncio.timeout(timeout):
            while not any(done(d) for d in self.drafts):
                native = await anext(self._events)
                if native.type == STREAM_RESUMED:
                    self.resumed += 1
                    for event in await self.adapter.history(self.sid):
                        self.record(self.mapper.map(event))
                else:
                    self.record(self.mapper.map(native))

    def of(self, kind: EventType) -> list[dict[str, Any]]:
        return [d.data for d in self.drafts if d.type is kind]


def ended(draft: EventDraft) -> bool:
    return draft.type is EventType.TURN_COMPLETED


async def test_text_turns_keep_the_conversation(hermes: HermesAdapter, mock_llm_app: Any) -> None:
    turn = await Turn.open(hermes)
    await turn.send("hello world from corral")
    await turn.until(ended)
    assert len(turn.of(EventType.MESSAGE_DELTA)) >= 2
    assert [m["content"][0]["text"] for m in turn.of(EventType.MESSAGE_COMPLETED)] == [
        "Echo: hello world from corral"
    ]
    assert turn.of(EventType.USAGE)[0]["input_tokens"] > 0
    assert await hermes.status(turn.sid) == "idle"
    # Reconciling after the end adds nothing new.
    for event in await hermes.history(turn.sid):
        assert all(d.native_id in turn.seen for d in turn.mapper.map(event))
    await turn.send("and a second turn", "trn_2")
    await turn.until(lambda d: d.native_id == "turn-end:trn_2")
    # Hermes' runs endpoint loads no history itself: the adapter sent the first exchange.
    contents = [str(m.get("content")) for m in mock_llm_app.state.requests[-1]["messages"]]
    assert "hello world from corral" in contents and "Echo: hello world from corral" in contents
    assert supports_delivery_check(cast(RuntimeAdapter, hermes))
    assert await hermes.user_inputs(turn.sid) == ["hello world from corral", "and a second turn"]


@pytest.mark.parametrize(
    ("decision", "is_error"), [(ApprovalDecision.ALLOW_ONCE, False), (ApprovalDecision.DENY, True)]
)
async def test_approval_round_trip(
    hermes: HermesAdapter, decision: ApprovalDecision, is_error: bool
) -> None:
    assert supports_approvals(cast(RuntimeAdapter, hermes))
    turn = await Turn.open(hermes)
    await turn.send(DANGEROUS)
    await turn.until(lambda d: d.type is EventType.APPROVAL_REQUESTED)
    assert await hermes.status(turn.sid) == "waiting"
    (asked,) = turn.of(EventType.APPROVAL_REQUESTED)
    await hermes.resolve_approval(turn.sid, asked["native_approval_id"], decision, None)
    await turn.until(ended)
    (resolved,) = turn.of(EventType.APPROVAL_RESOLVED)
    assert resolved["decision"] == decision.value
    assert [r["is_error"] for r in turn.of(EventType.TOOL_RESULT)] == [is_error]
    with pytest.raises(RuntimeRejected) as info:  # the run is over: nothing left to approve
        await hermes.resolve_approval(turn.sid, asked["native_approval_id"], decision, None)
    assert info.value.extra["http_status"] == 409


async def test_cancel_mid_turn(hermes: HermesAdapter) -> None:
    turn = await Turn.open(hermes)
    await turn.send("[[slow:4]] a slow answer with several words")
    await turn.until(lambda d: d.type is EventType.MESSAGE_DELTA)
    await hermes.cancel(turn.sid)
    await turn.until(ended)
    assert turn.of(EventType.TURN_COMPLETED)[-1]["stop_reason"] == "cancelled"
    assert await hermes.status(turn.sid) == "idle"
    await hermes.cancel(turn.sid)  # stopping a finished run is harmless


async def test_upstream_error_fails_the_turn(hermes: HermesAdapter) -> None:
    turn = await Turn.open(hermes)
    await turn.send("[[error:400]] please fail")
    await turn.until(ended)
    assert turn.of(EventType.ERROR)[0]["http_status"] == 400
    assert turn.of(EventType.TURN_COMPLETED)[-1]["stop_reason"] == "error"


async def test_dropped_stream_is_a_marked_gap_then_the_outcome(
    proxy: tuple[FaultProxy, str],
) -> None:
    fault, url = proxy
    adapter = adapter_for(url)
    try:
        turn = await Turn.open(adapter)
        await turn.send("[[slow:4]] a slow answer with several words")
        await turn.until(lambda d: d.type is EventType.MESSAGE_DELTA)
        fault.drop_streams()
        await turn.until(ended)
        assert fault.dropped == 1 and turn.resumed >= 1
        assert len(turn.of(EventType.STREAM_GAP)) == 1
        (completed,) = turn.of(EventType.MESSAGE_COMPLETED)
        assert completed["content"][0]["text"] == "Echo: a slow answer with several words"
        assert turn.of(EventType.TURN_COMPLETED) == [
            {"turn_id": "trn_1", "stop_reason": "end_turn"}
        ]
        # Later reconciliations repeat only ids already recorded.
        for event in await adapter.history(turn.sid):
            assert all(d.native_id in turn.seen for d in turn.mapper.map(event))
    finally:
        await adapter.aclose()


async def test_malformed_frame_is_skipped(proxy: tuple[FaultProxy, str]) -> None:
    fault, url = proxy
    adapter = adapter_for(url)
    try:
        before = malformed_frames["hermes"]
        turn = await Turn.open(adapter)
        fault.inject_malformed()
        await turn.send("hello world from corral")
        await turn.until(ended)
        assert malformed_frames["hermes"] == before + 1
        assert (
            turn.of(EventType.MESSAGE_COMPLETED)[0]["content"][0]["text"]
            == "Echo: hello world from corral"
        )
    finally:
        await adapter.aclose()


async def test_health_checks_the_key_and_the_runs_api(
    hermes: HermesAdapter, real_hermes_url: str
) -> None:
    health = await hermes.health()
    assert health["status"] == "ok" and health["version"] == "0.19.0"
    assert health["features"]["run_events_sse"] is True
    wrong = adapter_for(real_hermes_url, key="not-the-key-0000000000")
    with pytest.raises(RuntimeRejected) as info:
        await wrong.health()
    assert info.value.extra["http_status"] == 401
    await wrong.aclose()


async def test_wrong_key_and_unreachable_server_are_translated(real_hermes_url: str) -> None:
    wrong = adapter_for(real_hermes_url, key="not-the-key-0000000000")
    with pytest.raises(RuntimeRejected) as info:
        await wrong.create_session(SPEC, title="x")
    assert info.value.extra["http_status"] == 401 and "not-the-key" not in info.value.detail
    await wrong.aclose()
    dead = adapter_for(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RuntimeUnreachable):
        await dead.create_session(SPEC, title="x")
    await dead.aclose()
