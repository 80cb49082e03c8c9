"""Governance inside a running turn: what the runtime asks and does is put to ``decide()``.

The pump hands every batch of recorded events here. A runtime's permission prompt is answered
by policy when a rule allows or denies (a human is asked only for ``ask``); a tool call a rule
denies stops the turn if the runtime ran it without asking; runaway guards (tool calls, cost,
wall clock, repeated failures) stop the turn with their own ``stop_reason``; the turn's budget
reservation is settled at its real cost when it ends. The effects themselves (answering the
runtime, stopping the turn) are the session service's, through :class:`Enforcer`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from corral.domain.events import Event, EventType
from corral.domain.governance import Act, Decision, DecisionRequest, Outcome, Subject
from corral.domain.records import Budget, Session
from corral.governance.governor import Governor
from corral.governance.ledger import Reservation
from corral.governance.prices import cost_micros
from corral.governance.rules.guards import Stop, TurnWatch, observe
from corral.governance.rules.limits import Effective
from corral.governance.rules.tools import tool_use
from corral.sessions.pump import Pump
from corral.sessions.settlement import Tally, TurnSettlement, subject_of
from corral.store import approvals as approval_repo
from corral.store import events as event_repo
from corral.store import governance as governance_repo
from corral.store import sessions as session_repo
from corral.store.db import Database

log = logging.getLogger(__name__)


class Enforcer(Protocol):
    async def answer_by_policy(
        self, pump: Pump, approval_id: str, decision: Decision, *, allow: bool
    ) -> None: ...

    async def hold_for_human(self, pump: Pump, approval_id: str, decision: Decision) -> None: ...

    async def stop_turn(self, pump: Pump, turn_id: str, stop: Stop) -> None: ...

    async def note(self, pump: Pump, kind: EventType, data: dict[str, Any]) -> None: ...


def _policy_stop(decision: Decision) -> Stop:
    return Stop("policy_denied", decision.reason, decision.policy_id, decision.policy_version)


def decision_data(decision: Decision, **extra: Any) -> dict[str, Any]:
    """A decision as a ``governance.decision`` event's data."""
    return {
        "outcome": decision.outcome.value,
        "code": decision.code,
        "reason": decision.reason,
        "policy_id": decision.policy_id,
        "policy_version": decision.policy_version,
        "scope": decision.scope,
        "epoch": decision.epoch,
        **extra,
    }


@dataclass
class TurnState:
    turn_id: str
    subject: Subject
    limits: Effective
    watch: TurnWatch
    model: str | None
    tally: Tally
    stopping: bool = False
    recovered: bool = False  # started by another process (or this one's previous life)
    asked: set[str] = field(default_factory=set)  # call ids the runtime asked permission for
    #: Prompts left to a human (approval id -> the governance epoch decided at, the prompt):
    #: decided again when the epoch moves, so a key revoked meanwhile denies them.
    open_prompts: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    denied: dict[str, Decision] = field(default_factory=dict)  # call id -> deny decision


class Oversight:
    def __init__(self, db: Database, governor: Governor) -> None:
        self._db = db
        self._governor = governor
        self._turns: dict[str, TurnState] = {}  # session id -> its live turn
        self._adopted: set[tuple[str, str | None]] = set()  # (session, turn) looked at by _adopt
        # Parked well inside the ledger's grace for ended turns, so their own settlement always
        # comes before a sweeper would settle them from the log.
        grace = min(3.0, governor.ledger.timings.durable_grace / 4)
        self.settlement = TurnSettlement(db, governor, grace=grace)
        self.enforcer: Enforcer | None = None

    async def begin(
        self, session: Session, turn_id: str, model: str | None, reservation: Reservation | None
    ) -> None:
        self._turns[session.id] = await self._new_state(session, turn_id, model, reservation)

    async def _new_state(
        self, session: Session, turn_id: str, model: str | None, reservation: Reservation | None
    ) -> TurnState:
        subject = subject_of(session)
        limits = await self._governor.limits_for(subject)
        calls = 0
        if limits.get("max_tool_calls_per_session") is not None:  # only then is it worth a read
            async with self._db.read() as conn:
                calls = await event_repo.count_of_type(conn, session.id, EventType.TOOL_CALL.value)
        watch = TurnWatch(calls, session.cost_micros, time.monotonic())
        tally = Tally(turn_id, subject, reservation)
        return TurnState(turn_id, subject, limits, watch, model, tally)

    async def _state(
        self, pump: Pump, turn_id: str | None, *, ends_later: bool = False
    ) -> TurnState | None:
        """The live turn an event belongs to, or None when its turn is over.

        ``ends_later``: the batch being observed ends this turn after the event, so the turn
        was current when the event happened, whatever the session row (committed with the
        whole batch) says now.
        """
        state = self._turns.get(pump.session_id)
        if state is not None and (turn_id is None or state.turn_id == turn_id):
            return state
        if turn_id is None:
            return None
        # A turn this process did not start (recovered after a crash or a takeover).
        async with self._db.read() as conn:
            session = await session_repo.get_session(conn, pump.session_id)
        if session is None or (session.current_turn_id != turn_id and not ends_later):
            return None
        fresh = await self._new_state(session, turn_id, None, None)
        state = self._turns.get(pump.session_id)
        if state is not None and state.turn_id == turn_id:
            return state  # taken up meanwhile (the pump's observer and the tick both may)
        fresh.recovered = True
        self._turns[pump.session_id] = fresh
        return fresh

    async def observe(self, pump: Pump, events: list[Event]) -> None:
        # The turns this batch ends, with the seq of their end: an event before it belongs to a
        # turn that was live then, even though the row committed with the batch says it ended.
        ends = {e.turn_id: e.seq for e in events if e.type == EventType.TURN_COMPLETED}
        for event in events:
            try:
                await self._one(pump, event, ends.get(event.turn_id, -1) > event.seq)
            except Exception:
                log.exception("session %s: governance check of %s failed", pump.session_id,
                              event.type)  # fmt: skip

    async def _one(self, pump: Pump, event: Event, ends_later: bool) -> None:
        kind = event.type
        if kind not in _WATCHED:
            return
        if kind == EventType.TURN_COMPLETED:
            await self.finish(
                pump.session_id, event.turn_id, delivered=pump.delivered, pump=pump,
                before_seq=event.seq,
            )  # fmt: skip
            return
        state = await self._state(pump, event.turn_id, ends_later=ends_later)
        if state is None:
            if kind == EventType.USAGE:
                await self.settlement.usage_after_end(pump.session_id, event.turn_id, event.data)
            return
        if kind == EventType.APPROVAL_REQUESTED:
            await self._prompt(pump, state, event)
        elif kind == EventType.APPROVAL_RESOLVED:
            state.open_prompts.pop(str(event.data.get("approval_id") or ""), None)
        elif kind == EventType.TOOL_CALL:
            await self._tool_call(pump, state, event)
        elif kind == EventType.TOOL_RESULT:
            denied = state.denied.pop(str(event.data.get("call_id") or ""), None)
            if denied is not None and not state.stopping:
                # It ran without asking: the rule can no longer block it, so the turn stops.
                await self._stop(pump, state, _policy_stop(denied))
                return
        elif kind == EventType.USAGE:
            self._account(state, event.data)
        stop = observe(state.watch, kind, event.data, state.limits, time.monotonic())
        if stop is not None:
            await self._stop(pump, state, stop)

    def _account(self, state: TurnState, data: dict[str, Any]) -> None:
        tally = state.tally
        tally.usage_seen = True
        if data.get("cost_micros") is not None:
            tally.cost += int(data["cost_micros"])
            return
        model = data.get("model") or state.model
        price = None
        if isinstance(model, str) and self._governor.current is not None:
            price = self._governor.current.price_table(state.subject.org_id).lookup(model)
        tokens = int(data.get("input_tokens") or 0), int(data.get("output_tokens") or 0)
        if price is None:
            tally.unpriced = tally.unpriced or any(tokens)
            return
        tally.cost += cost_micros(price, *tokens)

    async def _decide_tool(
        self, state: TurnState, data: dict[str, Any], epoch: int | None = None
    ) -> Decision:
        if epoch is None:
            async with self._db.read() as conn:
                epoch = await governance_repo.read_epoch(conn)  # a revoke takes effect at once
        tool = tool_use(str(data.get("name") or ""), data.get("server"), data.get("input"))
        request = DecisionRequest(Act.TOOL_USE, state.subject, tool=tool, epoch=epoch)
        return await self._governor.decide(request)

    async def _prompt(self, pump: Pump, state: TurnState, event: Event) -> None:
        enforcer = self.enforcer
        approval_id = event.data.get("approval_id")
        if enforcer is None or not isinstance(approval_id, str):
            return
        call_id = str(event.data.get("call_id") or "")
        state.asked.add(call_id)
        state.denied.pop(call_id, None)
        decision = await self._decide_tool(state, event.data)
        if decision.code == "allowed" or decision.outcome is Outcome.ASK:
            state.open_prompts[approval_id] = (decision.epoch, event.data)
        if decision.code == "allowed":
            return  # no rule speaks to this tool: whoever runs the session answers, as before
        if decision.outcome is Outcome.ASK:
            await enforcer.hold_for_human(pump, approval_id, decision)
        else:
            await enforcer.answer_by_policy(
                pump, approval_id, decision, allow=decision.outcome is Outcome.ALLOW
            )

    async def _tool_call(self, pump: Pump, state: TurnState, event: Event) -> None:
        call_id = str(event.data.get("call_id") or "")
        if call_id in state.asked:
            return
        decision = await self._decide_tool(state, event.data)
        if decision.outcome is not Outcome.DENY:
            return
        # The runtime may still ask before running it (then the prompt is denied); if it runs
        # it unasked, its result stops the turn. A runtime without prompts is stopped now.
        if pump.adapter.capabilities.approvals:
            state.denied[call_id] = decision
            if self.enforcer is not None:
                data = decision_data(decision, call_id=call_id, act=Act.TOOL_USE.value)
                await self.enforcer.note(pump, EventType.GOVERNANCE_DECISION, data)
        else:
            await self._stop(pump, state, _policy_stop(decision))

    async def _stop(self, pump: Pump, state: TurnState, stop: Stop) -> None:
        if state.stopping or self.enforcer is None:
            return
        state.stopping = True
        await self.enforcer.stop_turn(pump, state.turn_id, stop)

    async def tick(self, pumps: dict[str, Pump]) -> None:
        """Stop turns past their wall-clock limit even when the runtime has gone quiet; settle
        ended turns whose grace for late usage is over."""
        await self.settlement.due()
        await self._adopt(pumps)
        now = time.monotonic()
        epoch: int | None = None
        for session_id, state in list(self._turns.items()):
            pump = pumps.get(session_id)
            if pump is None or state.stopping:
                continue
            stop = observe(state.watch, "tick", {}, state.limits, now)
            if stop is not None:
                await self._stop(pump, state, stop)
            elif state.open_prompts:
                if epoch is None:  # one read per tick, and only while prompts wait
                    async with self._db.read() as conn:
                        epoch = await governance_repo.read_epoch(conn)
                await self._revisit(pump, state, epoch)

    async def _adopt(self, pumps: dict[str, Pump]) -> None:
        """Take up turns this process pumps but never observed an event of (taken over, or
        recovered after a restart, while the runtime waits for a person): their limits apply
        from now on, and prompts already waiting are decided again at once (a key revoked
        during the takeover denies them) and at every epoch change after that, as if this
        process had seen them asked."""
        self._adopted &= {(sid, p.turn_id) for sid, p in pumps.items()}
        for session_id, pump in pumps.items():
            key = (session_id, pump.turn_id)
            if pump.turn_id is None or session_id in self._turns or key in self._adopted:
                continue
            self._adopted.add(key)  # once per turn, whatever the outcome
            state = await self._state(pump, pump.turn_id)
            if state is None or not state.recovered:
                continue
            async with self._db.read() as conn:
                waiting = {
                    a.id
                    for a in await approval_repo.list_for_session(
                        conn, session_id, statuses=("pending",)
                    )
                    if a.turn_id == pump.turn_id
                }
                asked = await event_repo.of_type(
                    conn, session_id, EventType.APPROVAL_REQUESTED.value, turn_id=pump.turn_id
                ) if waiting else []  # fmt: skip
            for event in asked:
                approval_id = event.data.get("approval_id")
                if approval_id in waiting:
                    state.asked.add(str(event.data.get("call_id") or ""))
                    state.open_prompts[approval_id] = (-1, event.data)

    async def _revisit(self, pump: Pump, state: TurnState, epoch: int) -> None:
        """Prompts waiting for a human, decided again after a revocation or policy change: one
        that is now denied (the session's key was revoked, say) is answered by policy."""
        for approval_id, (decided_at, data) in list(state.open_prompts.items()):
            if decided_at >= epoch:
                continue
            decision = await self._decide_tool(state, data, epoch)
            if decision.outcome is not Outcome.DENY:
                state.open_prompts[approval_id] = (epoch, data)
                continue
            del state.open_prompts[approval_id]
            if self.enforcer is not None:
                await self.enforcer.answer_by_policy(pump, approval_id, decision, allow=False)

    async def finish(
        self,
        session_id: str,
        turn_id: str | None,
        *,
        delivered: bool,
        pump: Pump | None = None,
        before_seq: int | None = None,
    ) -> None:
        """The turn ended: settle its reservation at what it really cost."""
        state = self._turns.get(session_id)
        if state is not None and state.turn_id == turn_id:
            del self._turns[session_id]
        else:
            state = None
        try:
            if state is not None and not state.recovered:
                crossed = await self.settlement.ended(state.tally, delivered=delivered)
            elif turn_id is not None:
                crossed = await self.settlement.recovered(session_id, turn_id, before_seq)
            else:
                return
        except Exception:
            log.exception("session %s: settling turn %s failed", session_id, turn_id)
            return
        if pump is not None:
            await self._announce(pump, crossed)

    async def _announce(self, pump: Pump, crossed: list[Budget]) -> None:
        for budget in crossed:
            if self.enforcer is not None:
                data = {
                    "budget_id": budget.id,
                    "scope": f"{budget.scope_kind}:{budget.scope_id}",
                    "soft_percent": budget.soft_percent,
                    "limit_usd": budget.limit_micros / 1e6,
                }
                await self.enforcer.note(pump, EventType.BUDGET_THRESHOLD, data)


_WATCHED = frozenset(
    {
        EventType.TURN_COMPLETED,
        EventType.APPROVAL_REQUESTED,
        EventType.APPROVAL_RESOLVED,
        EventType.TOOL_CALL,
        EventType.TOOL_RESULT,
        EventType.USAGE,
        EventType.ERROR,
    }
)
