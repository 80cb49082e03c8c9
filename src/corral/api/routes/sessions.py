"""Sessions: start, talk, cancel, answer approvals, read and stream events, query the fleet."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status
from starlette.responses import StreamingResponse

from corral.api.deps import Caller, Svc, idempotency
from corral.api.schemas.common import PageOut
from corral.api.schemas.sessions import (
    Approval,
    ApprovalResolve,
    Event,
    FleetKill,
    InputAnswerCreate,
    KillReport,
    MessageCreate,
    Session,
    SessionCreate,
    SessionKill,
    TurnAccepted,
)
from corral.domain import records
from corral.domain.errors import InvalidRequest
from corral.domain.events import Event as StoredEvent
from corral.domain.money import micros_to_usd
from corral.domain.states import SessionState
from corral.runtimes.base import InputAnswer, ToolResult
from corral.store.sessions import SessionFilter

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])

IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]


def session_out(session: records.Session) -> Session:
    return Session.model_validate(
        {
            **{k: getattr(session, k) for k in session.__slots__},
            "cost_usd": micros_to_usd(session.cost_micros),
        }
    )


def _event_out(event: StoredEvent) -> Event:
    return Event.model_validate(event)


@router.post("", response_model=Session, status_code=status.HTTP_201_CREATED)
async def create_session(
    body: SessionCreate, who: Caller, svc: Svc, response: Response, idempotency_key: IdemKey = None
) -> Session:
    session, created = await svc.sessions.create(
        who,
        agent_id=body.agent_id,
        input_text=body.input,
        title=body.title,
        idem=idempotency(idempotency_key, body.model_dump()),
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return session_out(session)


@router.get("", response_model=PageOut[Session])
async def list_sessions(
    who: Caller,
    svc: Svc,
    agent_id: str | None = Query(default=None, max_length=40),
    runtime_id: str | None = Query(default=None, max_length=40),
    team_id: str | None = Query(default=None, max_length=40),
    user_id: str | None = Query(default=None, max_length=40),
    state: list[SessionState] = Query(default_factory=list),
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    cursor: str | None = Query(default=None, max_length=500),
    limit: int | None = Query(default=None, ge=1, le=200),
) -> PageOut[Session]:
    for bound in (created_after, created_before):
        if bound is not None and bound.tzinfo is None:
            raise InvalidRequest("time bounds need a timezone (e.g. 2026-01-01T00:00:00Z)")
    where = SessionFilter(
        org_id=who.org_id,
        team_id=team_id,
        agent_id=agent_id,
        runtime_id=runtime_id,
        user_id=user_id,
        states=tuple(state),
        created_after=created_after,
        created_before=created_before,
    )
    page = await svc.sessions.list_sessions(who, where, cursor, limit)
    return PageOut[Session](data=[session_out(s) for s in page.items], next_cursor=page.next_cursor)


@router.get("/{session_id}", response_model=Session)
async def get_session(session_id: str, who: Caller, svc: Svc) -> Session:
    return session_out(await svc.sessions.get(who, session_id))


@router.post(
    "/{session_id}/messages", response_model=TurnAccepted, status_code=status.HTTP_202_ACCEPTED
)
async def send_message(
    session_id: str, body: MessageCreate, who: Caller, svc: Svc, idempotency_key: IdemKey = None
) -> TurnAccepted:
    started = await svc.sessions.send(
        who, session_id, body.text, idem=idempotency(idempotency_key, body.model_dump())
    )
    return TurnAccepted(
        session_id=session_id,
        turn_id=started.turn_id,
        input_id=started.input_id,
        state=started.session.state,
    )


@router.post("/kill", response_model=KillReport)
async def kill_sessions(body: FleetKill, who: Caller, svc: Svc) -> KillReport:
    """The kill switch: end every live session matching the filters, on the runtime too."""
    filters = {
        name: value
        for name, value in (
            ("agent", body.agent_id), ("team", body.team_id), ("runtime", body.runtime_id),
            ("key", body.key_id), ("user", body.user_id),
        )
        if value is not None
    }  # fmt: skip
    report = await svc.sessions.kill_matching(who, filters, body.reason)
    return KillReport(killed=report.killed, failed=report.failed)


@router.post("/{session_id}/kill", response_model=Session)
async def kill_session(session_id: str, body: SessionKill, who: Caller, svc: Svc) -> Session:
    """Cancel the session's turn on the runtime and terminate it (``stop_reason: killed``)."""
    return session_out(await svc.sessions.kill(who, session_id, body.reason))


@router.post("/{session_id}/cancel", response_model=Session)
async def cancel_session(session_id: str, who: Caller, svc: Svc) -> Session:
    return session_out(await svc.sessions.cancel(who, session_id))


@router.get("/{session_id}/events", response_model=PageOut[Event])
async def list_events(
    session_id: str,
    who: Caller,
    svc: Svc,
    after: int = Query(default=0, ge=0, le=2**62),
    limit: int | None = Query(default=None, ge=1, le=200),
) -> PageOut[Event]:
    events = await svc.sessions.events(who, session_id, after, limit)
    wanted = limit or 200
    nxt = str(events[-1].seq) if len(events) == wanted else None
    return PageOut[Event](data=[_event_out(e) for e in events], next_cursor=nxt)


def _resume_point(last_event_id: str | None, after: int | None) -> int:
    if last_event_id is not None:
        if not last_event_id.strip().isdigit() or len(last_event_id.strip()) > 18:
            raise InvalidRequest("Last-Event-ID must be an event seq", code="invalid_last_event_id")
        return int(last_event_id)
    return after or 0


@router.get(
    "/{session_id}/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_events(
    session_id: str,
    who: Caller,
    svc: Svc,
    after: int | None = Query(default=None, ge=0, le=2**62),
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Server-sent events: ``id`` is the seq, ``event`` the type; resumes after Last-Event-ID."""
    start = _resume_point(last_event_id, after)
    await svc.sessions.get(who, session_id)
    frames = svc.sessions.stream(
        who, session_id, start, heartbeat=svc.settings.sse_heartbeat_seconds
    )

    async def body() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        # Starlette cancels this body when the client disconnects: no per-batch check needed.
        async for batch in frames:
            if batch is None:
                yield ": heartbeat\n\n"
                continue
            # One write per batch: a reader that fell behind catches up in one send, not one
            # per event (each is a syscall and a pass through every middleware).
            yield "".join(
                f"id: {e.seq}\nevent: {e.type}\ndata: {_event_out(e).model_dump_json()}\n\n"
                for e in batch
            )
        # The stream only ends when this instance shuts down: tell the client to come back (to
        # any replica) with Last-Event-ID.
        yield 'event: reconnect\ndata: {"reason": "shutdown"}\n\n'

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


@router.get("/{session_id}/approvals", response_model=list[Approval])
async def list_approvals(
    session_id: str,
    who: Caller,
    svc: Svc,
    status_: str | None = Query(
        default=None, alias="status", pattern="^(pending|resolved|cancelled)$"
    ),
) -> list[Approval]:
    return [
        Approval.model_validate(a) for a in await svc.sessions.approvals(who, session_id, status_)
    ]


@router.post("/{session_id}/approvals/{approval_id}", response_model=Approval)
async def resolve_approval(
    session_id: str, approval_id: str, body: ApprovalResolve, who: Caller, svc: Svc
) -> Approval:
    approval = await svc.sessions.resolve_approval(
        who, session_id, approval_id, body.decision, body.message
    )
    return Approval.model_validate(approval)


@router.post("/{session_id}/inputs/{request_id}", response_model=Session)
async def answer_input(
    session_id: str, request_id: str, body: InputAnswerCreate, who: Caller, svc: Svc
) -> Session:
    """Answer an ``input.requested`` event: the runtime resumes the waiting turn."""
    results = tuple(ToolResult(r.call_id, r.output, r.is_error) for r in body.tool_results or ())
    answer = InputAnswer(text=body.text, tool_results=results)
    return session_out(await svc.sessions.answer_input(who, session_id, request_id, answer))
