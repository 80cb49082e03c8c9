"""What governance does to sessions: admission, answering prompts, stopping turns, the kill switch.

Admission builds the ``DecisionRequest`` for a session or turn (with the counts its limits need)
and turns a deny into the error the API reports. The rest carries out what ``Oversight`` decided
mid-turn, and what an operator orders: killing one session or a whole fleet slice, on the
runtime itself (cancel) as well as in Corral's records (terminated, ``stop_reason: killed``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from corral.audit.record import AuditEntry, AuditOutcome, entry
from corral.domain.errors import Conflict, Forbidden, InvalidRequest, RuntimeFailure
from corral.domain.events import (
    ApprovalDecision,
    EventDraft,
    EventType,
    StopReason,
    approval_resolved_native_id,
    turn_end_native_id,
)
from corral.domain.governance import (
    Act,
    Approver,
    ApproverRule,
    Counters,
    Decision,
    DecisionRequest,
    Outcome,
    Subject,
)
from corral.domain.records import Agent, Approval, Session
from corral.domain.states import ACTIVE_STATES, SessionState
from corral.governance.governor import Governor, raise_for
from corral.governance.rules.guards import Stop
from corral.identity.authz import Action, Principal, authorize
from corral.runtimes.base import supports_approvals
from corral.sessions import machine, recorder
from corral.sessions.oversight import Oversight, decision_data
from corral.sessions.pump import Pump, PumpRegistry
from corral.sessions.requests import RuntimeRequests
from corral.sessions.settlement import subject_of
from corral.store import approvals as approval_repo
from corral.store import runtimes as runtime_repo
from corral.store import sessions as session_repo
from corral.store.types import utcnow

log = logging.getLogger(__name__)

_OPEN_STATES = [s.value for s in SessionState if s is not SessionState.TERMINATED]
_RUNNING_STATES = [s.value for s in ACTIVE_STATES]
_KILL_FILTERS = ("agent", "team", "runtime", "key", "user")


@dataclass
class KillReport:
    killed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _allow_choice(approval: Approval) -> ApprovalDecision:
    offered = approval.choices or [ApprovalDecision.ALLOW_ONCE.value]
    for choice in (ApprovalDecision.ALLOW_ONCE, ApprovalDecision.ALLOW_SESSION):
        if choice.value in offered:
            return choice
    return ApprovalDecision(next(c for c in offered if c != ApprovalDecision.DENY.value))


class Enforcement(RuntimeRequests):
    _governor: Governor
    _pumps: PumpRegistry
    oversight: Oversight

    # -- admission --------------------------------------------------------------------------

    async def _admit(
        self,
        who: Principal,
        act: Act,
        agent: Agent,
        session: Session | None,
        turn_id: str | None = None,
    ) -> Decision:
        """Put the act to ``decide()``; a turn's budget is reserved durably, named after it."""
        async with self._db.read() as conn:
            runtime = await runtime_repo.get_runtime(conn, agent.runtime_id)
        subject = subject_of(session) if session is not None else None
        request = DecisionRequest(
            act,
            subject or _subject_for(who, agent),
            runtime_id=agent.runtime_id,
            runtime_kind=runtime.kind if runtime else None,
            model=agent.model,
            epoch=who.epoch,
            hold_as=f"turn:{turn_id}" if turn_id else None,
        )
        counts = await self._counters(request, session)
        decision = await self._governor.decide(replace(request, counters=counts))
        raise_for(decision)
        return decision

    async def _counters(self, request: DecisionRequest, session: Session | None) -> Counters:
        wanted = await self._governor.counts_needed(request)
        open_: dict[str, int] = {}
        running: dict[str, int] = {}
        if wanted:
            async with self._db.read() as conn:
                for scope, name in wanted:
                    kind, _, id_ = scope.partition(":")
                    states = _OPEN_STATES if name == "max_open_sessions" else _RUNNING_STATES
                    target = open_ if name == "max_open_sessions" else running
                    target[scope] = await session_repo.count_in_scope(
                        conn, kind, id_, states=states
                    )
        return Counters(
            session_turns=session.turns if session else 0,
            session_cost_micros=session.cost_micros if session else 0,
            open_sessions=open_,
            running_turns=running,
        )

    async def _check_approver(self, who: Principal, approval: Approval) -> None:
        if approval.decided_by != "ask":
            return  # no rule named approvers: anyone who may write the session answers
        if approval.expires_at is not None and approval.expires_at <= utcnow():
            raise Conflict("this approval expired (and resolves to deny)", code="approval_expired")
        rule = ApproverRule(
            tuple((approval.approvers or {}).get("roles") or ()),
            tuple((approval.approvers or {}).get("users") or ()),
        )
        request = DecisionRequest(
            Act.APPROVAL_RESOLVE, _subject_for(who, None),
            approver=Approver(who.user_id, who.role.value), approvers=rule, epoch=who.epoch,
        )  # fmt: skip
        decision = await self._governor.decide(request)
        if decision.outcome is not Outcome.ALLOW:
            raise Forbidden(decision.reason, code=decision.code)

    # -- Enforcer: what Oversight decided mid-turn ------------------------------------------

    async def answer_by_policy(
        self, pump: Pump, approval_id: str, decision: Decision, *, allow: bool
    ) -> None:
        async with self._db.read() as conn:
            approval = await approval_repo.get_approval(conn, pump.session_id, approval_id)
        if approval is None:
            return
        choice = _allow_choice(approval) if allow else ApprovalDecision.DENY
        async with self._db.write() as conn:
            claimed = await approval_repo.claim(
                conn, approval_id, decision=choice.value, message=decision.reason, resolved_by=None
            )
            if claimed:
                await approval_repo.annotate(
                    conn, approval_id, decided_by="policy", policy_id=decision.policy_id,
                    policy_version=decision.policy_version,
                )  # fmt: skip
                session = await session_repo.get_session(conn, pump.session_id)
                await self._audit.append(conn, _answered(session, approval, choice, decision))
        adapter = pump.adapter
        if not claimed or not supports_approvals(adapter):
            return
        try:
            await adapter.resolve_approval(
                pump.native_session_id, approval.native_id, choice, decision.reason
            )
        except RuntimeFailure as exc:
            log.warning("session %s: answering approval by policy failed: %s", pump.session_id,
                        exc.detail)  # fmt: skip
            async with self._db.write() as conn:
                await approval_repo.release(conn, approval_id)
                session = await session_repo.get_session(conn, pump.session_id)
                failed = _answered(session, approval, choice, decision, error=exc.detail)
                await self._audit.append(conn, failed)
            return
        resolved = {
            "native_approval_id": approval.native_id, "decision": choice.value,
            "message": decision.reason, "by": "policy", "resolved_by": None,
            "policy_id": decision.policy_id, "policy_version": decision.policy_version,
        }  # fmt: skip
        await pump.record(
            [
                EventDraft(EventType.GOVERNANCE_DECISION, decision_data(
                    decision, act=Act.TOOL_USE.value, approval_id=approval_id,
                    tool=approval.name, call_id=approval.call_id)),
                EventDraft(EventType.APPROVAL_RESOLVED, resolved,
                           approval_resolved_native_id(approval.native_id)),
            ]
        )  # fmt: skip

    async def hold_for_human(self, pump: Pump, approval_id: str, decision: Decision) -> None:
        rule = decision.approvers or ApproverRule()
        ttl = decision.ask_ttl_seconds or 900.0
        async with self._db.write() as conn:
            await approval_repo.annotate(
                conn, approval_id, decided_by="ask", policy_id=decision.policy_id,
                policy_version=decision.policy_version,
                approvers={"roles": list(rule.roles), "users": list(rule.users)},
                expires_at=utcnow() + timedelta(seconds=ttl),
            )  # fmt: skip
            session = await session_repo.get_session(conn, pump.session_id)
            await self._audit.append(conn, entry(
                "approval.ask", ("approval", approval_id), actor=None,
                org_id=session.org_id if session else None,
                team_id=session.team_id if session else None, decision=decision.outcome.value,
                policy=(decision.policy_id, decision.policy_version),
                outcome=AuditOutcome.PENDING, details={"session_id": pump.session_id,
                "roles": list(rule.roles), "users": list(rule.users), "ttl_seconds": ttl},
            ))  # fmt: skip
        data = decision_data(decision, act=Act.TOOL_USE.value, approval_id=approval_id,
                             approvers={"roles": list(rule.roles), "users": list(rule.users)},
                             expires_in_seconds=ttl)  # fmt: skip
        await pump.record([EventDraft(EventType.GOVERNANCE_DECISION, data)])

    async def stop_turn(self, pump: Pump, turn_id: str, stop: Stop) -> None:
        data = {"outcome": Outcome.DENY.value, "code": stop.stop_reason, "reason": stop.detail,
                "policy_id": stop.policy_id, "policy_version": stop.policy_version,
                "act": "turn.stop"}  # fmt: skip
        await pump.record([EventDraft(EventType.GOVERNANCE_DECISION, data)])
        try:
            await pump.adapter.cancel(pump.native_session_id)
        except RuntimeFailure as exc:
            log.warning("session %s: cancelling a stopped turn on the runtime failed: %s",
                        pump.session_id, exc.detail)  # fmt: skip
        done = {"turn_id": turn_id, "stop_reason": stop.stop_reason, "detail": stop.detail}
        await pump.record([EventDraft(EventType.TURN_COMPLETED, done, turn_end_native_id(turn_id))])

    async def note(self, pump: Pump, kind: EventType, data: dict[str, Any]) -> None:
        await pump.record([EventDraft(kind, data)])

    # -- upkeep -----------------------------------------------------------------------------

    async def expire_approvals(self) -> int:
        """Approvals a rule asked a human for, unanswered past their expiry, resolve to deny."""
        async with self._db.read() as conn:
            due = await approval_repo.expired(conn, utcnow())
        for approval in due:
            async with self._db.read() as conn:
                session = await session_repo.get_session(conn, approval.session_id)
            if session is None or session.native_session_id is None:
                continue
            async with self._db.write() as conn:
                claimed = await approval_repo.claim(
                    conn, approval.id, decision=ApprovalDecision.DENY.value,
                    message="approval expired", resolved_by=None,
                )  # fmt: skip
                if claimed:
                    await approval_repo.annotate(conn, approval.id, decided_by="expiry")
                    expired = _answered(session, approval, ApprovalDecision.DENY, None)
                    await self._audit.append(conn, expired)
            if not claimed:
                continue
            try:
                adapter = await self._adapter_of(session)
                if not supports_approvals(adapter):
                    continue
                await adapter.resolve_approval(
                    session.native_session_id, approval.native_id, ApprovalDecision.DENY,
                    "approval expired",
                )  # fmt: skip
            except RuntimeFailure as exc:
                log.warning("expiring approval %s failed: %s", approval.id, exc.detail)
            data = {"native_approval_id": approval.native_id, "decision": "deny",
                    "message": "approval expired", "by": "expiry", "resolved_by": None}  # fmt: skip
            draft = EventDraft(EventType.APPROVAL_RESOLVED, data,
                               approval_resolved_native_id(approval.native_id))  # fmt: skip
            async with self._db.write() as conn:
                stored = await recorder.record(
                    conn, session.id, [draft], turn_id=approval.turn_id, at=utcnow()
                )
            self._hub.publish(session.id, stored)
        return len(due)

    async def governance_tick(self) -> None:
        await self.expire_approvals()
        await self.oversight.tick({p.session_id: p for p in self._pumps.live_turns().values()})

    # -- the kill switch --------------------------------------------------------------------

    async def kill(self, who: Principal, session_id: str, reason: str | None) -> Session:
        session = await self.get(who, session_id, Action.SESSIONS_WRITE)
        await self._kill(who, session, reason)
        return await self.get(who, session_id)

    async def kill_matching(
        self, who: Principal, filters: dict[str, str], reason: str | None
    ) -> KillReport:
        """Kill every live session matching ``filters`` (agent, team, runtime, key, user)."""
        authorize(who, Action.SESSIONS_KILL)
        unknown = set(filters) - set(_KILL_FILTERS)
        if unknown or not filters:
            raise InvalidRequest(
                f"filter by one or more of {list(_KILL_FILTERS)}", code="invalid_filter"
            )
        if not who.is_admin:
            if filters.get("team", who.team_id) != who.team_id:
                return KillReport()
            filters = {**filters, "team": who.team_id or ""}
        async with self._db.read() as conn:
            targets = await session_repo.live_sessions_matching(conn, who.org_id, filters=filters)
        report = KillReport()
        gate = asyncio.Semaphore(16)

        async def one(session: Session) -> None:
            async with gate:
                try:
                    await self._kill(who, session, reason)
                    report.killed.append(session.id)
                except Exception as exc:
                    report.failed[session.id] = str(exc)

        await asyncio.gather(*(one(s) for s in targets))
        return report

    async def _kill(self, who: Principal, session: Session, reason: str | None) -> None:
        if session.state is SessionState.TERMINATED:
            return
        runtime_error = None
        if session.native_session_id is not None and session.state in ACTIVE_STATES:
            try:
                adapter = await self._adapter_of(session)
                await adapter.cancel(session.native_session_id)
            except RuntimeFailure as exc:
                runtime_error = exc.detail  # terminated here all the same; said in the event
        turn_id = session.current_turn_id
        data = {"outcome": "deny", "code": StopReason.KILLED.value, "act": "session.kill",
                "reason": reason or "killed by an operator", "by": who.user_id,
                "key_id": who.key_id, "runtime_error": runtime_error}  # fmt: skip
        drafts = [EventDraft(EventType.GOVERNANCE_DECISION, data)]
        if turn_id is not None:
            done = {"turn_id": turn_id, "stop_reason": StopReason.KILLED.value}
            drafts.append(EventDraft(EventType.TURN_COMPLETED, done, turn_end_native_id(turn_id)))
        pump = self._pumps.get(session.id)
        if pump is not None:
            await pump.record(drafts)  # ends the pump's turn; its observer settles the budget
            self._pumps.drop(pump)  # whatever the runtime still says about it is not wanted
        else:
            async with self._db.write() as conn:
                stored = await recorder.record(
                    conn, session.id, drafts, turn_id=turn_id, at=utcnow()
                )
            self._hub.publish(session.id, stored)
            await self.oversight.finish(session.id, turn_id, delivered=True)
        async with self._db.write() as conn:
            locked = await session_repo.get_session(conn, session.id, for_update=True)
            assert locked is not None
            end = machine.Snapshot(SessionState.TERMINATED, 0, StopReason.KILLED.value)
            moved = await recorder.transition(conn, locked, end, None, utcnow())
            await self._audit.append(conn, entry(
                "session.kill", ("session", session.id), actor=who, org_id=session.org_id,
                team_id=session.team_id, details={"reason": data["reason"],
                "state": session.state, "runtime_error": runtime_error},
            ))  # fmt: skip
        self._hub.publish(session.id, [moved])


def _subject_for(who: Principal, agent: Agent | None) -> Subject:
    return Subject(
        org_id=who.org_id,
        team_id=agent.team_id if agent else who.team_id,
        agent_id=agent.id if agent else None,
        user_id=who.user_id,
        key_id=who.key_id,
    )


def _answered(
    session: Session | None,
    approval: Approval,
    choice: ApprovalDecision,
    decision: Decision | None,
    *,
    error: str | None = None,
) -> AuditEntry:
    """An approval answered by a policy (``decision``) or by expiry (``None``)."""
    return entry(
        "approval.answer", ("approval", approval.id), actor=None,
        org_id=session.org_id if session else None, team_id=session.team_id if session else None,
        decision="deny" if choice is ApprovalDecision.DENY else "allow",
        policy=(decision.policy_id, decision.policy_version) if decision else (None, None),
        outcome=AuditOutcome.ERROR if error else AuditOutcome.SUCCESS,
        details={"by": "policy" if decision else "expiry", "choice": choice.value,
                 "session_id": approval.session_id, "tool": approval.name,
                 "call_id": approval.call_id, "error": error},
    )  # fmt: skip
