"""The audit trail: search it, export it (JSON Lines, for a SIEM), fetch the signing key."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from corral.api.deps import Caller, Svc
from corral.api.schemas.audit import AuditRecord
from corral.api.schemas.common import PageOut

router = APIRouter(prefix="/v1/audit", tags=["audit"])

PEM = "application/x-pem-file"
JSONL = "application/jsonl"


class DecisionChoice(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    ASK = "ask"


class OutcomeChoice(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    PENDING = "pending"
    ERROR = "error"


@router.get("", response_model=PageOut[AuditRecord])
async def list_records(
    who: Caller,
    svc: Svc,
    key_id: str | None = Query(default=None, max_length=100),
    user_id: str | None = Query(default=None, max_length=100),
    resource_type: str | None = Query(default=None, max_length=100),
    resource_id: str | None = Query(default=None, max_length=200),
    action: str | None = Query(default=None, max_length=100),
    decision: DecisionChoice | None = None,
    outcome: OutcomeChoice | None = None,
    since: datetime | None = Query(default=None, description="From this time (inclusive)."),
    until: datetime | None = Query(default=None, description="Before this time."),
    cursor: str | None = Query(default=None, max_length=500),
    limit: int | None = Query(default=None, ge=1, le=200),
) -> PageOut[AuditRecord]:
    """Newest first. Admins see the whole org; others their team's resources and own actions."""
    page = await svc.audit_reader.list_records(
        who, key_id=key_id, user_id=user_id, resource_type=resource_type,
        resource_id=resource_id, action=action, decision=decision, outcome=outcome,
        since=since, until=until, cursor=cursor, limit=limit,
    )  # fmt: skip
    return PageOut[AuditRecord](
        data=[AuditRecord.model_validate(r) for r in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/public-key",
    response_class=Response,
    responses={200: {"content": {PEM: {}}, "description": "The Ed25519 public key (PEM)."}},
)
async def public_key(who: Caller, svc: Svc) -> Response:
    """The key that verifies checkpoint signatures; its id is in `X-Corral-Audit-Key-Id`."""
    key_id, pem = await svc.audit_reader.public_key(who)
    return Response(pem, media_type=PEM, headers={"X-Corral-Audit-Key-Id": key_id})


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {JSONL: {}}, "description": "JSON Lines (docs/audit.md)."}},
)
async def export(
    who: Caller, svc: Svc, since: int = Query(default=0, ge=0, le=2**62)
) -> StreamingResponse:
    """The chain after seq `since`, records and signed checkpoints, one JSON per line (admins)."""
    lines = svc.audit_reader.export(who, since)
    return StreamingResponse((line + "\n" async for line in lines), media_type=JSONL)
