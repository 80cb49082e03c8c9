"""Budgets: a spending cap per scope and period, with what the current window has used."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response, status

from corral.api.deps import Caller, Svc
from corral.api.schemas.common import PageOut
from corral.api.schemas.governance import Budget, BudgetPut

router = APIRouter(prefix="/v1/budgets", tags=["budgets"])


@router.put("", response_model=Budget)
async def set_budget(body: BudgetPut, who: Caller, svc: Svc) -> Budget:
    """Create or replace the budget of `scope` for `period` (one per scope and period).

    `daily`, `weekly` (from Monday) and `monthly` windows start at midnight in `timezone`; a
    `total` budget never resets. Replacing keeps the id and what the window has spent (a new
    `timezone` moves the window).
    """
    view = await svc.governance.set_budget(
        who,
        scope=body.scope,
        limit_usd=body.limit_usd,
        period=body.period,
        timezone=body.timezone,
        soft_percent=body.soft_percent,
    )
    return Budget.of(view)


@router.get("", response_model=PageOut[Budget])
async def list_budgets(
    who: Caller,
    svc: Svc,
    scope: str | None = Query(default=None, max_length=60),
    cursor: str | None = Query(default=None, max_length=500),
    limit: int | None = Query(default=None, ge=1, le=200),
) -> PageOut[Budget]:
    """Budgets you can see (admins: all), newest first, each with its current window's use."""
    page = await svc.governance.list_budgets(who, scope=scope, cursor=cursor, limit=limit)
    return PageOut[Budget](data=[Budget.of(v) for v in page.items], next_cursor=page.next_cursor)


@router.get("/{budget_id}", response_model=Budget)
async def get_budget(budget_id: str, who: Caller, svc: Svc) -> Budget:
    return Budget.of(await svc.governance.get_budget(who, budget_id))


@router.delete("/{budget_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_budget(budget_id: str, who: Caller, svc: Svc) -> Response:
    await svc.governance.delete_budget(who, budget_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
