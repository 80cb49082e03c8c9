"""Governance administration: policies (and their versions), budgets and model prices.

Money is integer micro-dollars inside Corral; these schemas speak USD (floats) on the wire.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field

from corral.api.schemas.common import Input, Output
from corral.domain.money import micros_to_usd

if TYPE_CHECKING:
    from corral.domain import records
    from corral.governance.service import BudgetView

Scope = Field(
    min_length=3,
    max_length=60,
    description="KIND:ID, e.g. 'team:team_...', 'org:org_...', 'agent:agt_...', 'key:key_...'.",
)
Description = Field(default=None, max_length=500)
#: Upper bounds keep micro-dollar amounts well inside a 64-bit integer.
MaxUsd = 1_000_000_000.0
MaxUsdPerMtok = 1_000_000.0


class PolicyCreate(Input):
    scope: str = Scope
    kind: str = Field(
        min_length=1, max_length=20, description="'tool', 'model', 'runtime' or 'limits'."
    )
    body: dict[str, Any] = Field(description="The rule; its shape depends on 'kind'.")
    enabled: bool = True
    description: str | None = Description


class PolicyUpdate(Input):
    body: dict[str, Any] | None = None
    enabled: bool | None = None
    description: str | None = Description
    version: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000_000,
        description="The version you expect to change: another one answers 409 version_mismatch.",
    )


class Policy(Output):
    id: str
    scope: str
    kind: str
    body: dict[str, Any]
    version: int
    enabled: bool
    description: str | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, policy: records.Policy) -> Policy:
        return cls(
            id=policy.id,
            scope=f"{policy.scope_kind}:{policy.scope_id}",
            kind=policy.kind,
            body=policy.body,
            version=policy.version,
            enabled=policy.enabled,
            description=policy.description,
            created_by=policy.created_by,
            created_at=policy.created_at,
            updated_at=policy.updated_at,
        )


class PolicyVersion(Output):
    """One version of a policy as it was written; ``deleted`` marks the version that removed it."""

    policy_id: str
    version: int
    body: dict[str, Any]
    enabled: bool
    deleted: bool
    changed_by: str | None
    changed_at: datetime


class BudgetPut(Input):
    scope: str = Field(
        min_length=3,
        max_length=60,
        description="KIND:ID with KIND one of org, team, agent, user, key, session.",
    )
    limit_usd: float = Field(ge=0, le=MaxUsd, allow_inf_nan=False)
    period: str = Field(
        default="total", max_length=20, description="'total', 'daily', 'weekly' or 'monthly'."
    )
    timezone: str = Field(
        default="UTC", max_length=64, description="IANA name: where daily windows start."
    )
    soft_percent: int | None = Field(
        default=None, ge=1, le=100, description="Warn (soft_exceeded) past this share spent."
    )


class Budget(Output):
    id: str
    scope: str
    limit_usd: float
    period: str
    timezone: str
    soft_percent: int | None
    version: int
    spent_usd: float
    reserved_usd: float
    remaining_usd: float
    soft_exceeded: bool
    window_start: datetime
    window_end: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: BudgetView) -> Budget:
        budget = view.budget
        return cls(
            id=budget.id,
            scope=f"{budget.scope_kind}:{budget.scope_id}",
            limit_usd=micros_to_usd(budget.limit_micros),
            period=budget.period,
            timezone=budget.timezone,
            soft_percent=budget.soft_percent,
            version=budget.version,
            spent_usd=micros_to_usd(view.spent_micros),
            reserved_usd=micros_to_usd(view.reserved_micros),
            remaining_usd=micros_to_usd(view.remaining_micros),
            soft_exceeded=view.soft_exceeded,
            window_start=view.window_start,
            window_end=view.window_end,
            created_at=budget.created_at,
            updated_at=budget.updated_at,
        )


class PricePut(Input):
    input_usd_per_mtok: float = Field(ge=0, le=MaxUsdPerMtok, allow_inf_nan=False)
    output_usd_per_mtok: float = Field(ge=0, le=MaxUsdPerMtok, allow_inf_nan=False)
    cache_read_usd_per_mtok: float | None = Field(
        default=None, ge=0, le=MaxUsdPerMtok, allow_inf_nan=False
    )


class Price(Output):
    """USD per million tokens; ``source`` is 'shipped' (Corral's table) or 'org' (yours)."""

    model: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    cache_read_usd_per_mtok: float | None
    source: str
