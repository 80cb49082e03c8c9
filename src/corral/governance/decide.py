"""``evaluate``: the one place governance rules are applied. Pure: a snapshot and a request in,
a decision out, in microseconds.

Order: revocation and pause, runtime and model allowlists, limits, tool rules, then what a
budgeted spend needs (a price). The budget reservation itself is the ledger's, done by the
governor right after an ``allow`` (it needs I/O now and then).
"""

from __future__ import annotations

from datetime import datetime

from corral.domain.governance import (
    Act,
    ApproverRule,
    Decision,
    DecisionRequest,
    Outcome,
    Period,
    allow,
    deny,
)
from corral.domain.records import Budget
from corral.domain.roles import Role, at_least
from corral.governance.periods import window_start
from corral.governance.rules import limits as limit_rules
from corral.governance.rules import lists, tools
from corral.governance.snapshot import Snapshot

_STARTS_TURN = (Act.SESSION_CREATE, Act.MESSAGE_SEND)
_USES_MODEL = (Act.SESSION_CREATE, Act.MESSAGE_SEND, Act.MODEL_CALL)


def evaluate(snap: Snapshot, request: DecisionRequest, scopes: list[str] | None = None) -> Decision:
    """``scopes``: the subject's scope keys, when the caller has them already."""
    epoch = snap.epoch
    subject = request.subject
    if request.act is Act.APPROVAL_RESOLVE:
        return _approver(request, epoch)
    if subject.key_id is not None and subject.key_id in snap.revoked_keys:
        return deny("key_revoked", "the key that started this was revoked", epoch=epoch,
                    scope=f"key:{subject.key_id}")  # fmt: skip
    if subject.agent_id is not None and subject.agent_id in snap.paused_agents:
        return deny("agent_paused", "the agent is paused", epoch=epoch,
                    scope=f"agent:{subject.agent_id}")  # fmt: skip
    if scopes is None:
        scopes = subject.scope_keys()
    runtime_rules = [snap.runtimes[s] for s in scopes if s in snap.runtimes]
    if runtime_rules and request.act in _STARTS_TURN and request.runtime_id is not None:
        found = lists.evaluate(
            runtime_rules, "runtime", (request.runtime_id, request.runtime_kind), epoch
        )
        if found is not None:
            return found
    model_rules = [snap.models[s] for s in scopes if s in snap.models]
    if model_rules and request.model is not None and request.act in _USES_MODEL:
        found = lists.evaluate(model_rules, "model", (request.model,), epoch)
        if found is not None:
            return found
    limit_list = [r for s in scopes if s in snap.limits for r in snap.limits[s]]
    if limit_list:
        effective = limit_rules.effective(limit_list)
        found = limit_rules.check(request.act, limit_list, effective, request.counters, epoch)
        if found is not None:
            return found
    if request.act is Act.TOOL_USE and request.tool is not None:
        rules = [r for s in scopes if s in snap.tools for r in snap.tools[s]]
        found = tools.evaluate(rules, request.tool, epoch)
        if found is not None:
            return found
    if (
        request.act is Act.MODEL_CALL
        and request.model is not None
        and request.cost_micros is None  # the caller priced it (e.g. by the upstream's model)
        and budgets_for(snap, request, scopes)
    ):
        if snap.price_table(subject.org_id).lookup(request.model) is None:
            return deny(
                "model_unpriced",
                f"model {request.model!r} has no price, so its spend cannot be budgeted; "
                "an admin can price it (PUT /v1/prices/{model})",
                epoch=epoch,
            )
    return allow(epoch=epoch)


def _approver(request: DecisionRequest, epoch: int) -> Decision:
    who = request.approver
    rule = request.approvers or ApproverRule()
    if who is None:
        return deny("approver_required", "an approval is answered by a person", epoch=epoch)
    if who.user_id in rule.users or who.role in rule.roles:
        return allow("named approver", epoch=epoch)
    if not rule.users and not rule.roles and at_least(Role(who.role), Role.TEAM_ADMIN):
        return allow("team admins approve when a rule names nobody", epoch=epoch)
    return Decision(Outcome.DENY, "not_an_approver",
                    "this approval names other approvers", epoch=epoch)  # fmt: skip


def budgets_for(
    snap: Snapshot, request: DecisionRequest, scopes: list[str] | None = None
) -> list[Budget]:
    keys = request.subject.scope_keys() if scopes is None else scopes
    return [b for s in keys if s in snap.budgets for b in snap.budgets[s]]


def budget_windows(budgets: list[Budget], at: datetime) -> list[tuple[Budget, datetime]]:
    return [(b, window_start(Period(b.period), b.timezone, at)) for b in budgets]


def per_session_limits(
    snap: Snapshot, request: DecisionRequest, scopes: list[str] | None = None
) -> limit_rules.Effective:
    keys = request.subject.scope_keys() if scopes is None else scopes
    return limit_rules.effective([r for s in keys if s in snap.limits for r in snap.limits[s]])


def needs_counts(snap: Snapshot, request: DecisionRequest) -> list[tuple[str, str]]:
    """(scope, "max_open_sessions"|"max_running_turns") pairs the caller must count first."""
    wanted = []
    for scope in request.subject.scope_keys():
        for rule in snap.limits.get(scope, []):
            for name in limit_rules.SCOPED:
                if name in rule.values:
                    wanted.append((scope, name))
    return wanted
