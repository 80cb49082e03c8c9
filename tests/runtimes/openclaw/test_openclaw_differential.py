"""Differential check (``make test-slow``): the same scenarios against the simulator and the real
openclaw 2026.9.6 gateway must give the same outline of normalized events and the same
protocol answers. This is what keeps the simulator (and so the fast suite) honest."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from corral.domain.events import ApprovalDecision, EventDraft, EventType
from corral.runtimes.openclaw.adapter import OpenClawAdapter
from tests.plugins.openclaw import SIM_TOKEN, TOKEN
from tests.runtimes.openclaw.drive import Turn, adapter_for
from tests.runtimes.openclaw.test_openclaw_sim import (
    CALLER_SCOPES,
    check_handshake,
    check_headless_exec,
)

pytestmark = pytest.mark.slow

Scenario = Callable[[OpenClawAdapter], Awaitable[Any]]


@pytest.fixture
async def both(
    openclaw_sim_url: str, real_openclaw_url: str
) -> AsyncIterator[dict[str, OpenClawAdapter]]:
    adapters = {
        "sim": adapter_for(openclaw_sim_url, SIM_TOKEN),
        "real": adapter_for(real_openclaw_url, TOKEN),
    }
    yield adapters
    for adapter in adapters.values():
        await adapter.aclose()


async def turn_shape(adapter: OpenClawAdapter, prompt: str, hook: Any = None) -> list[str]:
    turn = await Turn.start(adapter)
    await turn.run(prompt, hook)
    return turn.shape()


def answering(decision: ApprovalDecision) -> Callable[[Turn, EventDraft], Awaitable[None]]:
    async def answer(turn: Turn, draft: EventDraft) -> None:
        if draft.type is EventType.APPROVAL_REQUESTED:
            approval_id = draft.data["native_approval_id"]
            await turn.adapter.resolve_approval(turn.key, approval_id, decision, None)

    return answer


async def cancel_after_first_delta(turn: Turn, draft: EventDraft) -> None:
    if draft.type is EventType.MESSAGE_DELTA and len(turn.of(EventType.MESSAGE_DELTA)) == 1:
        await turn.adapter.cancel(turn.key)


SCENARIOS: dict[str, tuple[str, Any]] = {
    "text": ("[[slow:0.3]] hello world from corral", None),
    "tool": ('read it [[tool:read {"path":"hello.txt"}]]', None),
    "approve": (
        'run it [[tool:exec {"command":"echo hi"}]]',
        answering(ApprovalDecision.ALLOW_ONCE),
    ),
    "deny": ('run it [[tool:exec {"command":"echo hi"}]]', answering(ApprovalDecision.DENY)),
    "cancel": ("[[slow:4]] a slow answer with several words", cancel_after_first_delta),
    "error": ("[[error:400]] please fail", None),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_same_outline(both: dict[str, OpenClawAdapter], name: str) -> None:
    prompt, hook = SCENARIOS[name]
    shapes = {side: await turn_shape(adapter, prompt, hook) for side, adapter in both.items()}
    assert shapes["sim"] == shapes["real"], json.dumps(shapes, indent=1)


async def test_same_status_and_history(both: dict[str, OpenClawAdapter]) -> None:
    seen: dict[str, Any] = {}
    for side, adapter in both.items():
        turn = await Turn.start(adapter)
        await turn.run('read it [[tool:read {"path":"hello.txt"}]]')
        history = await adapter.history(turn.key)
        seen[side] = (
            await adapter.status(turn.key),
            [e.payload["message"]["role"] for e in history],
            await adapter.user_inputs(turn.key),
        )
    assert seen["sim"] == seen["real"]


async def test_same_handshake_answers(openclaw_sim_url: str, real_openclaw_url: str) -> None:
    sim = await check_handshake(openclaw_sim_url, SIM_TOKEN)
    real = await check_handshake(real_openclaw_url, TOKEN)
    assert sim["hello"]["protocol"] == real["hello"]["protocol"] == 4
    assert set(sim["hello"]) <= set(real["hello"])
    for case in ("old", "bad"):
        assert sim[case]["ok"] is real[case]["ok"] is False
        assert sim[case]["error"]["code"] == real[case]["error"]["code"]
        assert sim[case]["error"]["details"]["code"] == real[case]["error"]["details"]["code"]


@pytest.mark.parametrize(("scopes", "expected"), CALLER_SCOPES)
async def test_same_exec_denial_without_an_approver(
    openclaw_sim_url: str, real_openclaw_url: str, scopes: list[str], expected: str
) -> None:
    sim = json.loads(await check_headless_exec(openclaw_sim_url, SIM_TOKEN, scopes))
    real = json.loads(await check_headless_exec(real_openclaw_url, TOKEN, scopes))
    assert expected in sim["error"] and expected in real["error"]
    assert set(sim) == set(real)
