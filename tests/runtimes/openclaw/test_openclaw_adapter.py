"""The OpenClaw adapter against the simulated gateway: turns, history, cancel, approvals, and the
WebSocket faults the HTTP fault proxy cannot inject (garbage frames, dropped connections)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from corral.domain.errors import RuntimeRejected, RuntimeUnreachable
from corral.domain.events import ApprovalDecision, EventDraft, EventType
from corral.runtimes import registry
from corral.runtimes.base import RuntimeTarget, supports_approvals, supports_delivery_check
from corral.runtimes.openclaw.adapter import OpenClawAdapter
from corral.runtimes.sse import malformed_frames
from corral.sim.openclaw.state import GatewayState
from corral.sim.processes import free_port
from tests.plugins.openclaw import SIM_TOKEN
from tests.runtimes.openclaw.drive import SPEC, Turn, adapter_for


@pytest.fixture
async def adapter(sim: tuple[str, GatewayState]) -> AsyncIterator[OpenClawAdapter]:
    adapter = adapter_for(sim[0], SIM_TOKEN)
    yield adapter
    await adapter.aclose()


def test_registered_with_its_capabilities() -> None:
    target = RuntimeTarget("rt", "openclaw", "http://127.0.0.1:1", {}, {"token": "t"})
    adapter = registry.build(target)
    assert isinstance(adapter, OpenClawAdapter)
    caps = registry.capabilities("openclaw")
    assert caps.approvals and caps.cancel and caps.history and not caps.client_tools
    assert supports_approvals(adapter) and supports_delivery_check(adapter)


async def test_text_turn_and_history(adapter: OpenClawAdapter) -> None:
    assert (await adapter.health())["protocol"] == 4
    turn = await Turn.start(adapter)
    assert turn.key.startswith("agent:main:dashboard:")
    await turn.run("[[slow:0.3]] hello world from corral")
    text = turn.of(EventType.MESSAGE_COMPLETED)[0]["content"][0]["text"]
    assert "hello world from corral" in text
    assert "".join(d["text"] for d in turn.of(EventType.MESSAGE_DELTA)) == text
    assert turn.of(EventType.USAGE)[0]["cost_usd"] > 0
    assert turn.shape() == ["message.completed", "turn.completed:end_turn"]
    assert await adapter.status(turn.key) == "idle"
    # Backfill reproduces the live ids of everything the transcript holds.
    mapper = adapter.mapper()
    mapper.begin_turn("trn_drive")
    backfill = {d.native_id for e in await adapter.history(turn.key) for d in mapper.map(e)}
    assert backfill and backfill <= turn.seen
    assert await adapter.user_inputs(turn.key) == ["[[slow:0.3]] hello world from corral"]


async def test_tool_turn(adapter: OpenClawAdapter) -> None:
    turn = await Turn.start(adapter)
    await turn.run('read it [[tool:read {"path":"hello.txt"}]]')
    assert turn.shape() == [
        "tool.call",
        "tool.result:ok",
        "message.completed",
        "turn.completed:end_turn",
    ]
    assert turn.of(EventType.TOOL_RESULT)[0]["output"] == "hello from the corral fixture\n"


@pytest.mark.parametrize(
    ("decision", "outcome"), [(ApprovalDecision.ALLOW_ONCE, "ok"), (ApprovalDecision.DENY, "error")]
)
async def test_exec_approval(
    adapter: OpenClawAdapter, decision: ApprovalDecision, outcome: str
) -> None:
    turn = await Turn.start(adapter)
    seen_status: list[str] = []

    async def answer(turn: Turn, draft: EventDraft) -> None:
        if draft.type is EventType.APPROVAL_REQUESTED:
            seen_status.append(await adapter.status(turn.key))
            pending = [e.type for e in await adapter.history(turn.key)]
            assert "exec.approval.requested" in pending
            await adapter.resolve_approval(
                turn.key, draft.data["native_approval_id"], decision, None
            )

    await turn.run('run it [[tool:exec {"command":"echo hi"}]]', answer)
    assert seen_status == ["waiting"]
    assert turn.shape() == [
        "tool.call",
        "approval.requested",
        "approval.resolved",
        f"tool.result:{outcome}",
        "message.completed",
        "turn.completed:end_turn",
    ]
    assert turn.of(EventType.APPROVAL_RESOLVED)[0]["decision"] == decision.value


async def test_cancel_mid_turn(adapter: OpenClawAdapter) -> None:
    turn = await Turn.start(adapter)

    async def cancel(turn: Turn, draft: EventDraft) -> None:
        if draft.type is EventType.MESSAGE_DELTA and len(turn.of(EventType.MESSAGE_DELTA)) == 1:
            await adapter.cancel(turn.key)

    await turn.run("[[slow:4]] a slow answer with several words", cancel, timeout=10)
    assert turn.of(EventType.TURN_COMPLETED) == [
        {"turn_id": "trn_drive", "stop_reason": "cancelled"}
    ]
    assert await adapter.status(turn.key) == "idle"


async def test_upstream_error(adapter: OpenClawAdapter) -> None:
    turn = await Turn.start(adapter)
    await turn.run("[[error:400]] please fail")
    errors = turn.of(EventType.ERROR)
    assert len(errors) == 1 and errors[0]["http_status"] == 400
    assert turn.shape() == ["error", "turn.completed:error"]


async def test_malformed_frame_is_skipped(
    adapter: OpenClawAdapter, sim: tuple[str, GatewayState]
) -> None:
    turn = await Turn.start(adapter)
    before = malformed_frames["openclaw"]

    async def garble(turn: Turn, draft: EventDraft) -> None:
        if draft.type is EventType.MESSAGE_DELTA and len(turn.of(EventType.MESSAGE_DELTA)) == 1:
            sim[1].send_garbage()

    await turn.run("[[slow:1]] hello world from corral", garble)
    assert malformed_frames["openclaw"] == before + 1
    assert turn.shape() == ["message.completed", "turn.completed:end_turn"]


async def test_dropped_connection_resumes_without_loss_or_duplicates(
    adapter: OpenClawAdapter, sim: tuple[str, GatewayState]
) -> None:
    turn = await Turn.start(adapter)
    dropped: list[int] = []

    async def cut(turn: Turn, draft: EventDraft) -> None:
        if draft.type is EventType.MESSAGE_DELTA and not dropped:
            dropped.append(sim[1].drop_connections())

    await turn.run("[[slow:2]] a slow answer with several words", cut)
    assert dropped == [1] and turn.resumed == 1
    completed = turn.of(EventType.MESSAGE_COMPLETED)
    assert len(completed) == 1
    assert "a slow answer with several words" in completed[0]["content"][0]["text"]
    assert len(turn.of(EventType.TURN_COMPLETED)) == 1
    ids = [d.native_id for d in turn.drafts]
    assert len(ids) == len(set(ids))
    # The session still works on the new connection.
    again = Turn(adapter, turn.key)
    await again.run("[[slow:0.3]] and again")
    assert again.shape() == ["message.completed", "turn.completed:end_turn"]


async def test_unreachable_gateway() -> None:
    adapter = adapter_for(f"http://127.0.0.1:{free_port()}", "t")
    try:
        with pytest.raises(RuntimeUnreachable):
            await adapter.health()
    finally:
        await adapter.aclose()


async def test_wrong_token_is_rejected_without_leaking_it(sim: tuple[str, GatewayState]) -> None:
    adapter = adapter_for(sim[0], "not-the-token")
    try:
        with pytest.raises(RuntimeRejected) as caught:
            await adapter.health()
        assert caught.value.extra.get("http_status") == 401
        assert "not-the-token" not in str(caught.value)
    finally:
        await adapter.aclose()


async def test_unknown_session_is_rejected(adapter: OpenClawAdapter) -> None:
    with pytest.raises(RuntimeRejected):
        await adapter.send("agent:main:dashboard:nope", "hi", SPEC)
