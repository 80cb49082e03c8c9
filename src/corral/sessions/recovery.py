"""Pick up a running turn this instance just claimed: after a crash, a restart or a takeover.

The same steps serve every case, and each is safe to repeat:
1. follow the session again (subscribe before anything else, so nothing live is missed);
2. if the turn's input was written but never confirmed delivered, ask the runtime whether it
   has it, and deliver it only if not: an accepted message reaches the runtime exactly once;
3. re-issue a cancel that was requested but may not have reached the runtime;
4. backfill from the runtime's own record, and end the turn if the runtime finished meanwhile.

Turns that ended shortly before the stop are backfilled too (:meth:`TurnRecovery.backfill_ended`).
"""

from __future__ import annotations

import logging

from corral.domain.states import SessionState
from corral.runtimes.base import AgentSpec, RuntimeAdapter, supports_delivery_check
from corral.sessions.connections import AdapterPool
from corral.sessions.pump import Pump, PumpRegistry
from corral.store import agents as agent_repo
from corral.store import leases as lease_repo
from corral.store import sessions as session_repo
from corral.store.db import Database
from corral.store.leases import RunningTurn
from corral.store.types import utcnow
from corral.telemetry.propagation import turn_context

log = logging.getLogger(__name__)


class TurnRecovery:
    def __init__(self, db: Database, pool: AdapterPool, pumps: PumpRegistry) -> None:
        self._db = db
        self._pool = pool
        self._pumps = pumps

    async def __call__(self, turn: RunningTurn) -> None:
        async with self._db.read() as conn:
            session = await session_repo.get_session(conn, turn.session_id)
        if session is None or session.native_session_id is None:
            return
        adapter = await self._pool.for_runtime(
            session.runtime_id, team_id=session.team_id, agent_id=session.agent_id
        )
        pump = await self._pumps.attach(session.id, session.native_session_id, adapter)
        async with pump.turn_lock:
            if pump.turn_id not in (None, turn.turn_id):
                return  # this process already runs a newer turn of the session
            pump.begin_turn(turn.turn_id)
        delivered_now = False
        if turn.input_id is not None:
            delivered_now = await self._deliver_once(
                session.id, turn.turn_id, turn.input_id, adapter, pump
            )
        pump.mark_delivered()
        if session.state is SessionState.CANCELLING:
            await adapter.cancel(session.native_session_id)
        if not delivered_now:
            await pump.reconcile()

    async def backfill_ended(self, turn: RunningTurn) -> None:
        """Catch a recently ended turn's trailing reports (OpenCode sends an aborted message's
        final text and usage after its idle) that a stop may have cut off."""
        async with self._db.read() as conn:
            session = await session_repo.get_session(conn, turn.session_id)
        if session is None or session.native_session_id is None:
            return
        if session.current_turn_id not in (None, turn.turn_id):
            return  # a newer turn runs; its own recovery covers the session
        adapter = await self._pool.for_runtime(
            session.runtime_id, team_id=session.team_id, agent_id=session.agent_id
        )
        pump = await self._pumps.attach(session.id, session.native_session_id, adapter)
        async with pump.turn_lock:
            if pump.turn_id is not None:
                return
            pump.last_turn_id = turn.turn_id
            pump.mapper.begin_turn(turn.turn_id)
        await pump.reconcile(complete_if_idle=False)

    async def _deliver_once(
        self, session_id: str, turn_id: str, input_id: str, adapter: RuntimeAdapter, pump: Pump
    ) -> bool:
        """Deliver a pending input unless the runtime already has it; True if sent now."""
        async with self._db.read() as conn:
            entry = await lease_repo.input_of(conn, input_id)
            delivered = await lease_repo.delivered_texts(conn, session_id)
        if entry is None or entry[2] != "pending":
            return False
        text = entry[1]
        if supports_delivery_check(adapter):
            held = await adapter.user_inputs(pump.native_session_id)
            if held.count(text) > delivered.count(text):
                await self._mark(input_id, "delivered")
                return False
        spec = await self._spec(session_id)
        with turn_context(turn_id):  # the runtime's own spans join the turn's trace
            await adapter.send(pump.native_session_id, text, spec)
        await self._mark(input_id, "delivered")
        log.info("session %s: delivered input %s after recovery", session_id, input_id)
        return True

    async def _spec(self, session_id: str) -> AgentSpec:
        async with self._db.read() as conn:
            session = await session_repo.get_session(conn, session_id)
            assert session is not None
            agent = await agent_repo.get_agent(
                conn, session.agent_id, version=session.agent_version
            )
        if agent is None:
            return AgentSpec(name="", model=None, instructions=None, tools=[])
        return AgentSpec(
            agent.name,
            agent.model,
            agent.instructions,
            agent.tools,
            agent.metadata,
            agent_id=agent.id,
            version=agent.version,
        )

    async def _mark(self, input_id: str, status: str) -> None:
        async with self._db.write() as conn:
            await session_repo.mark_input(conn, input_id, status, utcnow())
