"""Settling a turn's budget reservation at what the turn really cost.

A turn's cost is the sum of its ``usage`` events. Runtimes keep reporting briefly after they say
a turn is over (OpenCode sends the final usage after its idle), so a turn that ended without any
usage is parked for a short grace before it settles; usage that arrives later still is charged
on its own. A turn that reported nothing at all settles at its estimate, never at $0. A turn this
process did not start (taken over after a crash) settles its durable hold from the log.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from corral.domain.events import EventType
from corral.domain.governance import Subject
from corral.domain.records import Budget
from corral.governance.governor import Governor
from corral.governance.ledger import Reservation
from corral.store import events as event_repo
from corral.store import sessions as session_repo
from corral.store.db import Database

log = logging.getLogger(__name__)


@dataclass
class Tally:
    """What one turn has cost so far, and what it reserved."""

    turn_id: str
    subject: Subject
    reservation: Reservation | None = None
    cost: int = 0
    usage_seen: bool = False
    unpriced: bool = False  # tokens reported for a model nobody priced


@dataclass
class _Parked:
    tally: Tally
    delivered: bool
    deadline: float


def subject_of(session: Any) -> Subject:
    return Subject(
        org_id=session.org_id, team_id=session.team_id, agent_id=session.agent_id,
        user_id=session.user_id, key_id=session.key_id, session_id=session.id,
    )  # fmt: skip


class TurnSettlement:
    def __init__(self, db: Database, governor: Governor, *, grace: float = 3.0) -> None:
        self._db = db
        self._governor = governor
        self._grace = grace
        self._parked: dict[str, _Parked] = {}  # turn id ->

    async def ended(self, tally: Tally, *, delivered: bool) -> list[Budget]:
        """The turn ended in this process; budgets whose soft threshold its settlement crossed."""
        if tally.reservation is None:
            return []  # no budget applied when it started
        if delivered and not tally.usage_seen:
            self._parked[tally.turn_id] = _Parked(tally, delivered, time.monotonic() + self._grace)
            return []
        return await self._settle(tally, delivered=delivered)

    async def usage_after_end(
        self, session_id: str, turn_id: str | None, data: dict[str, Any]
    ) -> None:
        cost = int(data.get("cost_micros") or 0)
        parked = self._parked.get(turn_id or "")
        if parked is not None:
            parked.tally.usage_seen = True
            parked.tally.cost += cost
            return
        if cost <= 0:
            return
        # Spent all the same: charged with no reservation behind it.
        async with self._db.read() as conn:
            session = await session_repo.get_session(conn, session_id)
        if session is not None:
            await self._governor.charge(subject_of(session), cost)

    async def due(self, *, everything: bool = False) -> list[Budget]:
        """Settle parked turns whose grace is over (all of them when stopping)."""
        now = time.monotonic()
        crossed: list[Budget] = []
        for turn_id, parked in list(self._parked.items()):
            if everything or parked.deadline <= now:
                del self._parked[turn_id]
                crossed += await self._settle(parked.tally, delivered=parked.delivered)
        return crossed

    async def _settle(self, tally: Tally, *, delivered: bool) -> list[Budget]:
        try:
            return await self._governor.settle(tally.reservation, self._cost(tally, delivered))
        except Exception:
            log.exception("settling turn %s failed; its hold is swept later", tally.turn_id)
            return []

    def _cost(self, tally: Tally, delivered: bool) -> int:
        parts = tally.reservation.parts if tally.reservation else ()
        reserved = parts[0].amount if parts else 0
        if not delivered and not tally.usage_seen:
            return 0  # the input never reached the runtime: nothing was spent
        if not tally.usage_seen or tally.unpriced:
            # The runtime did not say (or said it in tokens of an unpriced model): charge the
            # estimate rather than nothing. Never $0.
            return max(tally.cost, reserved or self._governor.turn_estimate)
        return tally.cost

    async def recovered(
        self, session_id: str, turn_id: str, before_seq: int | None
    ) -> list[Budget]:
        """A turn this process took over: its durable reservation (named after the turn) is
        settled at what the log says it cost up to its end."""
        async with self._db.read() as conn:
            session = await session_repo.get_session(conn, session_id)
            usage = await event_repo.of_type(
                conn, session_id, EventType.USAGE.value, turn_id=turn_id
            )
        if session is None:
            return []
        if before_seq is not None:
            usage = [e for e in usage if e.seq < before_seq]
        held = Reservation(f"turn:{turn_id}", (), 0.0, holder=f"turn:{turn_id}")
        tally = Tally(turn_id, subject_of(session), held, usage_seen=bool(usage))
        tally.cost = sum(int(e.data.get("cost_micros") or 0) for e in usage)
        return await self.ended(tally, delivered=True)
