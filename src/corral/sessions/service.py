"""Session operations for the API, CLI and (later) the scheduler: coordinate, never hold logic.

State rules live in ``machine``, event bookkeeping in ``recorder``, runtime I/O in the adapter,
the live event flow in ``pump``. Each operation here authorizes, opens the transaction, and calls
them in the order that keeps the store consistent when the runtime fails half-way.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from corral.audit import context as audit_context
from corral.audit.log import AuditLog
from corral.audit.record import entry
from corral.domain.errors import (
    AgentPaused,
    Conflict,
    Draining,
    IdempotencyMismatch,
    NotFound,
    RuntimeFailure,
    SessionBusy,
)
from corral.domain.events import (
    Event,
    EventDraft,
    EventType,
    StopReason,
)
from corral.domain.governance import Act, Decision
from corral.domain.ids import new_id
from corral.domain.records import Agent, Session
from corral.domain.states import SessionState
from corral.governance.governor import Governor
from corral.identity.authz import Action, Principal, authorize
from corral.runtimes.base import AgentSpec, RuntimeAdapter
from corral.sessions import machine, recorder
from corral.sessions.connections import AdapterPool
from corral.sessions.enforcement import Enforcement
from corral.sessions.hub import EventHub
from corral.sessions.leases import LeaseTerms
from corral.sessions.oversight import Oversight
from corral.sessions.pump import PumpRegistry
from corral.store import agents as agent_repo
from corral.store import idempotency
from corral.store import sessions as repo
from corral.store.db import Database
from corral.store.errors import conflict_on_duplicate
from corral.store.types import utcnow
from corral.telemetry.propagation import turn_context
from corral.telemetry.spans import trace_id_of


def request_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Idempotency:
    key: str
    body_hash: str


@dataclass(frozen=True, slots=True)
class TurnStarted:
    session: Session
    turn_id: str
    input_id: str


def _spec(agent: Agent) -> AgentSpec:
    return AgentSpec(
        agent.name,
        agent.model,
        agent.instructions,
        agent.tools,
        agent.metadata,
        agent_id=agent.id,
        version=agent.version,
    )


def _failure_drafts(exc: RuntimeFailure, turn_id: str | None) -> list[EventDraft]:
    error = {
        "code": exc.code,
        "message": exc.detail,
        "retryable": True,
        "fatal": False,
        **({"http_status": exc.extra["http_status"]} if "http_status" in exc.extra else {}),
    }
    drafts = [EventDraft(EventType.ERROR, error)]
    if turn_id is not None:
        done = {"turn_id": turn_id, "stop_reason": StopReason.ERROR.value}
        drafts.append(EventDraft(EventType.TURN_COMPLETED, done))
    return drafts


class SessionService(Enforcement):
    def __init__(
        self,
        db: Database,
        hub: EventHub,
        pool: AdapterPool,
        pumps: PumpRegistry,
        lease: LeaseTerms,
        governor: Governor,
        audit: AuditLog,
    ) -> None:
        super().__init__(db, hub)
        self._audit = audit
        self._pool = pool
        self._pumps = pumps
        self._lease = lease
        self._governor = governor
        self.oversight = Oversight(db, governor)
        self.oversight.enforcer = self
        pumps.observers.append(self.oversight.observe)

    # -- writes ---------------------------------------------------------------------------

    async def _agent(self, who: Principal, agent_id: str, version: int | None = None) -> Agent:
        async with self._db.read() as conn:
            agent = await agent_repo.get_agent(conn, agent_id, version=version)
        if agent is None or agent.org_id != who.org_id:
            raise NotFound(f"agent {agent_id} not found")
        return agent

    async def _replay(self, who: Principal, scope: str, idem: Idempotency | None) -> str | None:
        if idem is None:
            return None
        async with self._db.read() as conn:
            seen = await idempotency.lookup(conn, who.key_id, scope, idem.key)
        if seen is None:
            return None
        if seen[0] != idem.body_hash:
            raise IdempotencyMismatch("this Idempotency-Key was used with a different request body")
        return seen[1]

    async def create(
        self,
        who: Principal,
        *,
        agent_id: str,
        input_text: str | None,
        title: str | None,
        idem: Idempotency | None,
    ) -> tuple[Session, bool]:
        """Create a session (and start its first turn if ``input_text``); (session, created)."""
        self._refuse_if_draining()
        agent = await self._agent(who, agent_id)
        authorize(who, Action.SESSIONS_WRITE, team_id=agent.team_id)
        replayed = await self._replay(who, "sessions", idem)
        if replayed is not None:
            return await self.get(who, replayed), False
        if agent.paused:
            raise AgentPaused(f"agent {agent.name!r} is paused; resume it to start sessions")
        await self._admit(who, Act.SESSION_CREATE, agent, None)
        # The first turn is admitted (and its budget reserved) before the session exists, so a
        # refusal leaves nothing behind.
        first, turn_id = None, new_id("turn")
        if input_text is not None:
            audit_context.set_trace_id(trace_id_of(turn_id))  # its records join the turn's trace
            first = await self._admit(who, Act.MESSAGE_SEND, agent, None, turn_id)
        try:
            session = await self._create(who, agent, title, idem)
            if input_text is not None and first is not None:
                fresh = await self.get(who, session.id)
                await self._send(who, fresh, agent, input_text, None, first, turn_id)
        except BaseException:
            await self._governor.release(first.reservation if first else None)
            raise
        return await self.get(who, session.id), True

    async def _create(
        self, who: Principal, agent: Agent, title: str | None, idem: Idempotency | None
    ) -> Session:
        now = utcnow()
        session = Session(
            id=new_id("session"), org_id=who.org_id, team_id=agent.team_id, agent_id=agent.id,
            agent_version=agent.version, runtime_id=agent.runtime_id, user_id=who.user_id,
            key_id=who.key_id, native_session_id=None, state=SessionState.CREATED, stop_reason=None,
            title=title, last_seq=0, turns=0, current_turn_id=None, input_tokens=0,
            output_tokens=0, cost_micros=0, error=None, created_at=now, updated_at=now,
            last_activity_at=now,
        )  # fmt: skip
        async with self._db.write() as conn:
            await repo.insert_session(conn, session)
            if idem is not None:
                async with conflict_on_duplicate("this Idempotency-Key is being used right now"):
                    await idempotency.remember(
                        conn, key_id=who.key_id, scope="sessions", idempotency_key=idem.key,
                        request_hash=idem.body_hash, resource_id=session.id, at=now,
                    )  # fmt: skip
            await self._audit.append(conn, entry(
                "session.start", ("session", session.id), actor=who, org_id=who.org_id,
                team_id=agent.team_id, details={"agent_id": agent.id,
                "agent_version": agent.version, "runtime_id": agent.runtime_id},
            ))  # fmt: skip
        adapter = await self._pool.for_runtime(
            agent.runtime_id, team_id=agent.team_id, agent_id=agent.id
        )
        await self._ensure_native(session, agent, adapter)
        return session

    async def _ensure_native(self, session: Session, agent: Agent, adapter: RuntimeAdapter) -> str:
        if session.native_session_id is not None:
            return session.native_session_id
        title = session.title or f"{agent.name} ({session.id})"
        try:
            native = await adapter.create_session(_spec(agent), title=title)
        except RuntimeFailure as exc:
            async with self._db.write() as conn:
                await recorder.record(
                    conn, session.id, _failure_drafts(exc, None), turn_id=None, at=utcnow()
                )
                current = await repo.get_session(conn, session.id, for_update=True)
                if current is not None and current.state is not SessionState.FAILED:
                    failed = machine.Snapshot(SessionState.FAILED, 0, StopReason.ERROR.value)
                    await recorder.transition(conn, current, failed, None, utcnow())
            self._hub.notify(session.id)
            exc.extra["session_id"] = session.id
            raise
        created = {
            "native_session_id": native.native_session_id,
            "agent_version": session.agent_version,
        }
        async with self._db.write() as conn:
            await repo.update_session(conn, session.id, native_session_id=native.native_session_id)
            draft = EventDraft(
                EventType.SESSION_CREATED, created, f"session:{native.native_session_id}"
            )
            stored = await recorder.record(conn, session.id, [draft], turn_id=None, at=utcnow())
        self._hub.publish(session.id, stored)
        return native.native_session_id

    async def send(
        self, who: Principal, session_id: str, text: str, *, idem: Idempotency | None
    ) -> TurnStarted:
        session = await self.get(who, session_id, Action.SESSIONS_WRITE)
        self._refuse_if_draining()
        scope = f"messages:{session_id}"
        replayed = await self._replay(who, scope, idem)
        if replayed is not None:
            return await self._replayed_turn(who, session_id, replayed)
        try:
            agent = await self._agent(who, session.agent_id, session.agent_version)
        except NotFound:
            raise Conflict("the session's agent was deleted", code="agent_deleted") from None
        if agent.paused:  # read just now with the agent: a pause takes effect at once
            raise AgentPaused(f"agent {agent.name!r} is paused; resume it to continue sessions")
        if not machine.can_start_turn(session.state):
            raise SessionBusy(
                f"session is {session.state.value}; wait for the turn to end or cancel it"
            )
        turn_id = new_id("turn")
        audit_context.set_trace_id(trace_id_of(turn_id))  # its records join the turn's trace
        admitted = await self._admit(who, Act.MESSAGE_SEND, agent, session, turn_id)
        try:
            return await self._send(who, session, agent, text, idem, admitted, turn_id)
        except BaseException:
            await self._governor.release(admitted.reservation)  # no-op once the turn settled it
            raise

    async def _send(
        self,
        who: Principal,
        session: Session,
        agent: Agent,
        text: str,
        idem: Idempotency | None,
        admitted: Decision,
        turn_id: str,
    ) -> TurnStarted:
        session_id = session.id
        adapter = await self._pool.for_runtime(
            agent.runtime_id, team_id=agent.team_id, agent_id=agent.id
        )
        native_id = await self._ensure_native(session, agent, adapter)
        pump = await self._pumps.attach(session.id, native_id, adapter)
        input_id, now = new_id("input"), utcnow()
        # The pump claims the turn before its row exists, so the lease keeper never mistakes a
        # turn being started here for an orphan to recover (and deliver a second time).
        async with pump.turn_lock:
            if pump.turn_id is not None:
                raise SessionBusy("a turn of this session is already being started or running")
            pump.begin_turn(turn_id)
            try:
                stored = await self._start_turn(who, session_id, turn_id, input_id, text, idem, now)
            except BaseException:
                pump.abandon_turn(turn_id)
                raise
            await self.oversight.begin(session, turn_id, agent.model, admitted.reservation)
        self._hub.publish(session_id, stored)
        try:
            with turn_context(turn_id):  # the runtime gets the turn's traceparent
                await adapter.send(native_id, text, _spec(agent))
        except RuntimeFailure as exc:
            await pump.record(_failure_drafts(exc, turn_id))
            await self._mark_input(input_id, "failed")
            exc.extra["session_id"] = session_id
            raise
        pump.mark_delivered()
        await self._mark_input(input_id, "delivered")
        return TurnStarted(await self.get(who, session_id), turn_id, input_id)

    async def _start_turn(
        self,
        who: Principal,
        session_id: str,
        turn_id: str,
        input_id: str,
        text: str,
        idem: Idempotency | None,
        now: datetime,
    ) -> list[Event]:
        """Write the input (outbox), the turn with its lease, and ``turn.started``: one commit."""
        scope = f"messages:{session_id}"
        async with self._db.write() as conn:
            locked = await repo.get_session(conn, session_id, for_update=True)
            assert locked is not None
            if not machine.can_start_turn(locked.state):
                raise SessionBusy(f"session is {locked.state.value}; a turn is already running")
            await repo.insert_input(
                conn, input_id=input_id, session_id=session_id, turn_id=turn_id, text=text, at=now
            )
            await repo.insert_turn(
                conn, turn_id=turn_id, session_id=session_id, ordinal=locked.turns + 1,
                input_id=input_id, at=now, owner=self._lease.owner,
                lease_until=self._lease.until(now),
            )  # fmt: skip
            await repo.update_session(
                conn, session_id, turns=locked.turns + 1, current_turn_id=turn_id
            )
            if idem is not None:
                async with conflict_on_duplicate("this Idempotency-Key is being used right now"):
                    await idempotency.remember(
                        conn, key_id=who.key_id, scope=scope, idempotency_key=idem.key,
                        request_hash=idem.body_hash, resource_id=input_id, at=now,
                    )  # fmt: skip
            started = {"turn_id": turn_id, "input_id": input_id, "text": text}
            draft = EventDraft(EventType.TURN_STARTED, started, f"turn-start:{turn_id}")
            return await recorder.record(
                conn, session_id, [draft], turn_id=turn_id, at=now, locked=locked
            )

    def _refuse_if_draining(self) -> None:
        if self._hub.draining:
            raise Draining("this Corral instance is shutting down; retry in a moment")

    async def _mark_input(self, input_id: str, status: str) -> None:
        async with self._db.write() as conn:
            await repo.mark_input(conn, input_id, status, utcnow())

    async def _replayed_turn(self, who: Principal, session_id: str, input_id: str) -> TurnStarted:
        async with self._db.read() as conn:
            turn_id = await repo.turn_of_input(conn, input_id)
        return TurnStarted(await self.get(who, session_id), turn_id, input_id)

    async def cancel(self, who: Principal, session_id: str) -> Session:
        session = await self.get(who, session_id, Action.SESSIONS_WRITE)
        if machine.cancel_target(session.state) is None or session.native_session_id is None:
            return session
        adapter = await self._adapter_of(session)
        async with self._db.write() as conn:
            locked = await repo.get_session(conn, session_id, for_update=True)
            assert locked is not None
            target = machine.cancel_target(locked.state)
            if target is None:
                return locked
            snap = machine.Snapshot(target)
            moved = await recorder.transition(conn, locked, snap, locked.current_turn_id, utcnow())
        self._hub.publish(session_id, [moved])
        try:
            await adapter.cancel(session.native_session_id)
        except RuntimeFailure as exc:
            async with self._db.write() as conn:
                await recorder.record(
                    conn, session_id, _failure_drafts(exc, None), turn_id=None, at=utcnow()
                )
                current = await repo.get_session(conn, session_id, for_update=True)
                assert current is not None
                back = machine.Snapshot(locked.state)
                await recorder.transition(conn, current, back, current.current_turn_id, utcnow())
            self._hub.notify(session_id)
            raise
        return await self.get(who, session_id)
