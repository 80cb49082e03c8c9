"""The adapter on the simulator: what 0.19.0 cannot show (newer builds' ``request_id``) and
recovery paths that need a fresh adapter (a Corral restart)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from corral.domain.events import ApprovalDecision, EventType
from corral.runtimes.hermes.adapter import HermesAdapter
from corral.runtimes.hermes.mapping import split_approval_id
from corral.sim._server import BackgroundServer
from corral.sim.hermes import SimConfig, create_app
from tests.plugins.hermes import API_KEY
from tests.runtimes.hermes.test_hermes_adapter import DANGEROUS, Turn, adapter_for, ended


@pytest.fixture(scope="module")
def newer_sim_url(mock_llm_url: str) -> Iterator[str]:
    config = SimConfig(llm_url=mock_llm_url, api_key=API_KEY, newer=True)
    with BackgroundServer(create_app(config)) as url:
        yield url


@pytest.fixture
async def sim(hermes_sim_url: str) -> AsyncIterator[HermesAdapter]:
    adapter = adapter_for(hermes_sim_url)
    yield adapter
    await adapter.aclose()


async def test_newer_builds_key_approvals_by_request_id(newer_sim_url: str) -> None:
    adapter = adapter_for(newer_sim_url)
    try:
        turn = await Turn.open(adapter)
        await turn.send(DANGEROUS)
        await turn.until(lambda d: d.type is EventType.APPROVAL_REQUESTED)
        (asked,) = turn.of(EventType.APPROVAL_REQUESTED)
        run_id, request_id = split_approval_id(asked["native_approval_id"])
        assert run_id.startswith("run_") and request_id is not None and not request_id.isdigit()
        await adapter.resolve_approval(
            turn.sid, asked["native_approval_id"], ApprovalDecision.ALLOW_SESSION, None
        )
        await turn.until(ended)
        (resolved,) = turn.of(EventType.APPROVAL_RESOLVED)
        assert resolved["native_approval_id"] == asked["native_approval_id"]
        assert resolved["decision"] == "allow_session"
    finally:
        await adapter.aclose()


async def test_a_restarted_corral_rebuilds_the_outcome_behind_a_gap(
    sim: HermesAdapter, hermes_sim_url: str
) -> None:
    turn = await Turn.open(sim)
    await turn.send("hello world from corral")
    await turn.until(ended)
    # Another Corral process (no memory of the run) reconciles the same open turn.
    fresh = adapter_for(hermes_sim_url)
    try:
        assert await fresh.status(turn.sid) == "idle"
        mapper = fresh.mapper()
        mapper.begin_turn("trn_1")
        drafts = [d for e in await fresh.history(turn.sid) for d in mapper.map(e)]
        kinds = [d.type for d in drafts]
        assert kinds == [
            EventType.STREAM_GAP,
            EventType.MESSAGE_COMPLETED,
            EventType.TURN_COMPLETED,
        ]
        assert drafts[1].data["content"][0]["text"] == "Echo: hello world from corral"
        assert drafts[2].native_id == "turn-end:trn_1"  # the same end as the live one
    finally:
        await fresh.aclose()


async def test_unknown_session_has_no_history_and_sends_fine(sim: HermesAdapter) -> None:
    # A session row Hermes never saw (deleted, or made by an older Corral): no history to send.
    turn = await Turn.open(sim, "corral_never_created")
    await turn.send("hello world from corral")
    await turn.until(ended)
    assert turn.of(EventType.MESSAGE_COMPLETED)
