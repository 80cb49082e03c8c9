"""The compiled governance snapshot: every rule, budget and price, indexed for O(1) lookups.

Built from rows whenever the epoch moves (``governor``), never mutated after. Rules are indexed by
the scope they are attached to, so a decision looks at the handful of scopes its subject has,
however many policies and budgets exist.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from corral.domain.errors import InvalidRequest
from corral.domain.governance import PolicyKind, PolicyRef, ScopeKind
from corral.domain.records import Budget, ModelPriceRow, Policy
from corral.governance.prices import SHIPPED_PRICES, ModelPrice, PriceTable
from corral.governance.rules.limits import LimitRule, compile_limits
from corral.governance.rules.lists import ListRule, compile_list_rule
from corral.governance.rules.tools import ToolRule, compile_tool_rule

CompiledRule = ToolRule | ListRule | LimitRule


def compile_policy(policy: Policy) -> CompiledRule:
    """One policy row as a rule; ``InvalidRequest`` (``invalid_policy``) when malformed."""
    ref = PolicyRef(policy.id, policy.version)
    scope = f"{policy.scope_kind}:{policy.scope_id}"
    if not isinstance(policy.body, dict):
        raise InvalidRequest("a policy body is a JSON object", code="invalid_policy")
    kind = PolicyKind(policy.kind)
    if kind is PolicyKind.TOOL:
        return compile_tool_rule(ref, scope, policy.body)
    if kind is PolicyKind.MODEL:
        return compile_list_rule(ref, scope, policy.body, "models")
    if kind is PolicyKind.RUNTIME:
        return compile_list_rule(ref, scope, policy.body, "runtimes")
    return compile_limits(ref, scope, policy.body)


@dataclass(frozen=True)
class Snapshot:
    epoch: int
    tools: dict[str, list[ToolRule]] = field(default_factory=dict)
    models: dict[str, list[ListRule]] = field(default_factory=dict)
    runtimes: dict[str, list[ListRule]] = field(default_factory=dict)
    limits: dict[str, list[LimitRule]] = field(default_factory=dict)
    budgets: dict[str, list[Budget]] = field(default_factory=dict)
    budgets_by_id: dict[str, Budget] = field(default_factory=dict)
    prices: dict[str, PriceTable] = field(default_factory=dict)
    paused_agents: frozenset[str] = frozenset()
    revoked_keys: frozenset[str] = frozenset()
    policy_count: int = 0

    def price_table(self, org_id: str) -> PriceTable:
        return self.prices.get(org_id) or _SHIPPED


_SHIPPED = PriceTable(SHIPPED_PRICES)


def compile_snapshot(
    epoch: int,
    policies: Iterable[Policy],
    budgets: Iterable[Budget],
    prices: Iterable[ModelPriceRow],
    *,
    paused_agents: Iterable[str] = (),
    revoked_keys: Iterable[str] = (),
) -> Snapshot:
    tools: dict[str, list[ToolRule]] = defaultdict(list)
    models: dict[str, list[ListRule]] = defaultdict(list)
    runtimes: dict[str, list[ListRule]] = defaultdict(list)
    limits: dict[str, list[LimitRule]] = defaultdict(list)
    count = 0
    for policy in policies:
        if not policy.enabled:
            continue
        rule = compile_policy(policy)
        count += 1
        scope = f"{policy.scope_kind}:{policy.scope_id}"
        if isinstance(rule, ToolRule):
            tools[scope].append(rule)
        elif isinstance(rule, LimitRule):
            limits[scope].append(rule)
        elif policy.kind == PolicyKind.MODEL:
            models[scope].append(rule)
        else:
            runtimes[scope].append(rule)
    by_scope: dict[str, list[Budget]] = defaultdict(list)
    by_id: dict[str, Budget] = {}
    for budget in budgets:
        by_scope[f"{budget.scope_kind}:{budget.scope_id}"].append(budget)
        by_id[budget.id] = budget
    overrides: dict[str, list[ModelPrice]] = defaultdict(list)
    for row in prices:
        overrides[row.org_id].append(
            ModelPrice(
                row.model,
                row.input_micros,
                row.output_micros,
                row.cache_read_micros,
                row.cache_write_micros,
            )
        )
    tables = {org: PriceTable([*SHIPPED_PRICES, *rows]) for org, rows in overrides.items()}
    return Snapshot(
        epoch, dict(tools), dict(models), dict(runtimes), dict(limits), dict(by_scope), by_id,
        tables, frozenset(paused_agents), frozenset(revoked_keys), count,
    )  # fmt: skip


def scope_of(kind: ScopeKind, id_: str) -> str:
    return f"{kind.value}:{id_}"
