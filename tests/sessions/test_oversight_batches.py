"""Governance judges each event by the turn it happened in, not by the row committed with it.

A takeover replica (or a reconcile from the runtime's history) may record a turn's last usage
and its end in one write. The session row committed with that write already says the turn is
over; the usage must still count once, in the turn's settlement, never also as "usage after
the end".
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from corral.domain.events import EventDraft, EventType, turn_end_native_id
from corral.sessions import recorder
from corral.sessions.oversight import Oversight
from corral.store import sessions as session_repo
from corral.store.types import utcnow
from tests.support.corral import CorralServer
from tests.support.fleet import developer_agent, make_session

TURN = "turn_taken_over"


def _usage(n: int, cost: int) -> EventDraft:
    return EventDraft(EventType.USAGE, {"input_tokens": 3, "cost_micros": cost}, f"usage:{n}")


def _end() -> EventDraft:
    data = {"stop_reason": "end_turn"}
    return EventDraft(EventType.TURN_COMPLETED, data, turn_end_native_id(TURN))


class _Money:
    """Records every charge and settlement the oversight asks the governor for."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, governor: Any) -> None:
        self.charged: list[int] = []
        self.settled: list[tuple[str, int]] = []

        async def charge(subject: Any, cost: int) -> list[Any]:
            self.charged.append(cost)
            return []

        async def settle(reservation: Any, cost: int) -> list[Any]:
            self.settled.append((reservation.holder, cost))
            return []

        monkeypatch.setattr(governor, "charge", charge)
        monkeypatch.setattr(governor, "settle", settle)


async def _session(corral: CorralServer, opencode_sim_url: str) -> str:
    dev, agent = await developer_agent(corral, opencode_sim_url, "o@x.io")
    session_id: str = (await make_session(corral, dev["key"], agent["id"]))["id"]
    started = EventDraft(EventType.TURN_STARTED, {"turn_id": TURN}, f"turn-start:{TURN}")
    async with corral.services.db.write() as conn:
        await session_repo.update_session(conn, session_id, current_turn_id=TURN)
        await recorder.record(conn, session_id, [started], turn_id=TURN, at=utcnow())
    return session_id


async def _observe(corral: CorralServer, session_id: str, writes: list[list[EventDraft]]) -> None:
    """Record each write and hand it to a fresh oversight, as a replica that took over would."""
    oversight = Oversight(corral.services.db, corral.services.governor)
    pump: Any = SimpleNamespace(session_id=session_id, delivered=True)
    for drafts in writes:
        async with corral.services.db.write() as conn:
            stored = await recorder.record(conn, session_id, drafts, turn_id=TURN, at=utcnow())
        await oversight.observe(pump, stored)


async def test_usage_sharing_a_write_with_its_turns_end_is_charged_once(
    corral: CorralServer, opencode_sim_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = await _session(corral, opencode_sim_url)
    money = _Money(monkeypatch, corral.services.governor)
    await _observe(corral, session_id, [[_usage(1, 400), _usage(2, 300), _end()]])
    assert money.charged == []  # none of it counted as "after the end"
    assert money.settled == [(f"turn:{TURN}", 700)]


async def test_usage_after_the_end_in_a_later_write_is_still_charged_on_its_own(
    corral: CorralServer, opencode_sim_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = await _session(corral, opencode_sim_url)
    money = _Money(monkeypatch, corral.services.governor)
    await _observe(corral, session_id, [[_usage(1, 400), _end()], [_usage(2, 50)]])
    assert money.settled == [(f"turn:{TURN}", 400)]
    assert money.charged == [50]
