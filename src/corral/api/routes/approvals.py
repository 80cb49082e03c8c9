"""The approvals inbox: what runtimes asked, across every session the caller can see."""

from __future__ import annotations

from fastapi import APIRouter, Query

from corral.api.deps import Caller, Svc
from corral.api.schemas.sessions import Approval, ApprovalResolve

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])


@router.get("", response_model=list[Approval])
async def list_approvals(
    who: Caller,
    svc: Svc,
    status: str | None = Query(default=None, pattern="^(pending|resolving|resolved|cancelled)$"),
    session_id: str | None = Query(default=None, max_length=40),
    limit: int | None = Query(default=None, ge=1, le=200),
) -> list[Approval]:
    found = await svc.sessions.approval_inbox(
        who, status=status, session_id=session_id, limit=limit
    )
    return [Approval.model_validate(a) for a in found]


@router.post("/{approval_id}", response_model=Approval)
async def resolve_approval(
    approval_id: str, body: ApprovalResolve, who: Caller, svc: Svc
) -> Approval:
    """Approve or deny; a rule that asked for named approvers accepts only them."""
    approval = await svc.sessions.resolve_approval_by_id(
        who, approval_id, body.decision, body.message
    )
    return Approval.model_validate(approval)
