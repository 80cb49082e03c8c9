"""Answers to what a runtime asked the caller mid-turn: tool approvals and client input.

Both follow one rule: the runtime is told first only once Corral has made sure the request is
still open, and the answer is recorded with a dedupe key the runtime's own echo shares, so the
log holds one resolution whichever report lands first.
"""

from __future__ import annotations

from corral.audit.log import AuditLog
from corral.audit.record import entry
from corral.domain.errors import CapabilityUnsupported, Conflict, NotFound, RuntimeFailure
from corral.domain.events import (
    ApprovalDecision,
    EventDraft,
    EventType,
    approval_resolved_native_id,
    input_resolved_native_id,
)
from corral.domain.records import Approval, Session
from corral.domain.states import SessionState
from corral.identity.authz import Action, Principal, authorize, visible_team
from corral.runtimes.base import (
    InputAnswer,
    RuntimeAdapter,
    supports_approvals,
    supports_client_input,
)
from corral.sessions import recorder
from corral.sessions.connections import AdapterPool
from corral.sessions.queries import SessionQueries
from corral.store import approvals as approval_repo
from corral.store import events as event_repo
from corral.store.pagination import clamp_limit
from corral.store.types import utcnow


class RuntimeRequests(SessionQueries):
    _pool: AdapterPool
    _audit: AuditLog

    async def _adapter_of(self, session: Session) -> RuntimeAdapter:
        return await self._pool.for_runtime(
            session.runtime_id, team_id=session.team_id, agent_id=session.agent_id
        )

    async def _check_approver(self, who: Principal, approval: Approval) -> None:
        """Raise unless ``who`` may answer ``approval`` (governance narrows this)."""

    async def approval_inbox(
        self,
        who: Principal,
        *,
        status: str | None,
        session_id: str | None,
        limit: int | None,
    ) -> list[Approval]:
        """Approvals across the sessions the caller can see, oldest first."""
        authorize(who, Action.APPROVALS_READ)
        async with self._db.read() as conn:
            return await approval_repo.inbox(
                conn, who.org_id, team_id=visible_team(who), status=status,
                session_id=session_id, limit=clamp_limit(limit, default=100),
            )  # fmt: skip

    async def resolve_approval_by_id(
        self,
        who: Principal,
        approval_id: str,
        decision: ApprovalDecision,
        message: str | None,
    ) -> Approval:
        async with self._db.read() as conn:
            approval = await approval_repo.get_by_id(conn, approval_id)
        if approval is None:
            raise NotFound(f"approval {approval_id} not found")
        return await self.resolve_approval(who, approval.session_id, approval_id, decision, message)

    async def resolve_approval(
        self,
        who: Principal,
        session_id: str,
        approval_id: str,
        decision: ApprovalDecision,
        message: str | None,
    ) -> Approval:
        session = await self.get(who, session_id, Action.SESSIONS_READ)
        async with self._db.read() as conn:
            approval = await approval_repo.get_approval(conn, session_id, approval_id)
        if approval is None:
            raise NotFound(f"approval {approval_id} not found")
        if approval.decided_by != "ask":
            # No rule named approvers: whoever may write the session answers, as before.
            authorize(who, Action.SESSIONS_WRITE, team_id=session.team_id)
        if approval.choices and decision.value not in approval.choices:
            raise Conflict(
                f"{decision.value!r} is not offered here; choose one of {approval.choices}",
                code="decision_not_offered",
            )
        adapter = await self._adapter_of(session)
        if not supports_approvals(adapter) or session.native_session_id is None:
            raise CapabilityUnsupported(f"{adapter.kind} runtimes cannot answer approvals")
        await self._check_approver(who, approval)
        async with self._db.write() as conn:
            claimed = await approval_repo.claim(
                conn, approval_id, decision=decision.value, message=message, resolved_by=who.user_id
            )
            if claimed:
                await approval_repo.annotate(conn, approval_id, decided_by="human")
        if not claimed:
            raise Conflict("approval is no longer pending", code="approval_not_pending")
        try:
            await adapter.resolve_approval(
                session.native_session_id, approval.native_id, decision, message
            )
        except RuntimeFailure:
            async with self._db.write() as conn:
                await approval_repo.release(conn, approval_id)
            raise
        data = {
            "native_approval_id": approval.native_id,
            "decision": decision.value,
            "message": message,
            "by": "client",
            "resolved_by": who.user_id,
        }
        draft = EventDraft(
            EventType.APPROVAL_RESOLVED, data, approval_resolved_native_id(approval.native_id)
        )
        async with self._db.write() as conn:
            stored = await recorder.record(
                conn, session_id, [draft], turn_id=approval.turn_id, at=utcnow()
            )
            resolved = await approval_repo.get_approval(conn, session_id, approval_id)
            await self._audit.append(conn, entry(
                "approval.answer", ("approval", approval_id), actor=who, org_id=session.org_id,
                team_id=session.team_id,
                decision="deny" if decision is ApprovalDecision.DENY else "allow",
                details={"by": "human", "choice": decision.value, "session_id": session_id,
                         "tool": approval.name, "call_id": approval.call_id},
            ))  # fmt: skip
        self._hub.publish(session_id, stored)
        assert resolved is not None
        return resolved

    async def answer_input(
        self, who: Principal, session_id: str, request_id: str, answer: InputAnswer
    ) -> Session:
        """Resume a turn waiting for the caller (an ``input.requested`` event's request)."""
        session = await self.get(who, session_id, Action.SESSIONS_WRITE)
        adapter = await self._adapter_of(session)
        if not supports_client_input(adapter) or session.native_session_id is None:
            raise CapabilityUnsupported(f"{adapter.kind} runtimes do not ask for client input")
        async with self._db.read() as conn:
            asked = await event_repo.of_type(
                conn, session_id, EventType.INPUT_REQUESTED.value, turn_id=None
            )
            key = input_resolved_native_id(request_id)
            answered = await event_repo.known_native_ids(conn, session_id, [key])
        request = next((e for e in asked if e.data.get("request_id") == request_id), None)
        if request is None:
            raise NotFound(f"input request {request_id} not found")
        if answered or session.state is not SessionState.WAITING_INPUT:
            raise Conflict("this input request is no longer open", code="input_not_pending")
        await adapter.answer_input(session.native_session_id, request_id, answer)
        data = {
            "request_id": request_id,
            "text": answer.text,
            "tool_results": [
                {"call_id": r.call_id, "output": r.output, "is_error": r.is_error}
                for r in answer.tool_results
            ],
            "resolved_by": who.user_id,
        }
        draft = EventDraft(EventType.INPUT_RESOLVED, data, key)
        async with self._db.write() as conn:
            stored = await recorder.record(
                conn, session_id, [draft], turn_id=request.turn_id, at=utcnow()
            )
        self._hub.publish(session_id, stored)
        return await self.get(who, session_id)
