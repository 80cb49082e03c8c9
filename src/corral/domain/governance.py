"""Governance vocabulary: what is asked (``DecisionRequest``), what is answered (``Decision``).

Pure data, shared by the evaluator (``governance.decide``), the ledger, the services that call
them and the API that reports them. Money is integer micro-dollars (``domain.money``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class ScopeKind(StrEnum):
    """Where a policy or budget applies, widest first."""

    ORG = "org"
    TEAM = "team"
    AGENT = "agent"
    USER = "user"
    KEY = "key"
    SESSION = "session"


#: Scopes policies may be attached to (budgets may use every kind).
POLICY_SCOPES = frozenset({ScopeKind.ORG, ScopeKind.TEAM, ScopeKind.AGENT, ScopeKind.KEY})


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    kind: ScopeKind
    id: str

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.id}"


class Act(StrEnum):
    """Every path that spends or acts asks ``decide()`` first, naming what it is about to do."""

    SESSION_CREATE = "session.create"
    MESSAGE_SEND = "message.send"
    TOOL_USE = "tool.use"
    APPROVAL_RESOLVE = "approval.resolve"
    MODEL_CALL = "model.call"


class Outcome(StrEnum):
    ALLOW = "allow"
    ASK = "ask"
    DENY = "deny"


#: Precedence when several rules match: deny beats ask beats allow.
OUTCOME_RANK = {Outcome.ALLOW: 0, Outcome.ASK: 1, Outcome.DENY: 2}


class PolicyKind(StrEnum):
    TOOL = "tool"
    MODEL = "model"
    RUNTIME = "runtime"
    LIMITS = "limits"


class Period(StrEnum):
    TOTAL = "total"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    #: Only for request-rate windows, never offered for budgets.
    MINUTE = "minute"


BUDGET_PERIODS = (Period.TOTAL, Period.DAILY, Period.WEEKLY, Period.MONTHLY)


@dataclass(frozen=True, slots=True)
class Subject:
    """Who acts, and on whose behalf: every scope a rule or budget could be attached to."""

    org_id: str
    team_id: str | None = None
    agent_id: str | None = None
    user_id: str | None = None
    key_id: str | None = None
    session_id: str | None = None

    def scope_keys(self) -> list[str]:
        """``str()`` of each scope, widest first: what rules and budgets are indexed by."""
        keys = [f"org:{self.org_id}"]
        if self.team_id:
            keys.append(f"team:{self.team_id}")
        if self.agent_id:
            keys.append(f"agent:{self.agent_id}")
        if self.user_id:
            keys.append(f"user:{self.user_id}")
        if self.key_id:
            keys.append(f"key:{self.key_id}")
        if self.session_id:
            keys.append(f"session:{self.session_id}")
        return keys

    def scopes(self) -> tuple[Scope, ...]:
        """Widest first; absent ids are skipped."""
        pairs = (
            (ScopeKind.ORG, self.org_id),
            (ScopeKind.TEAM, self.team_id),
            (ScopeKind.AGENT, self.agent_id),
            (ScopeKind.USER, self.user_id),
            (ScopeKind.KEY, self.key_id),
            (ScopeKind.SESSION, self.session_id),
        )
        return tuple(Scope(kind, id_) for kind, id_ in pairs if id_)


@dataclass(frozen=True, slots=True)
class ToolUse:
    name: str
    server: str | None = None  # MCP server, when the runtime names one
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Counters:
    """What the session and its scopes have used so far, gathered by the caller."""

    session_turns: int = 0
    turn_tool_calls: int = 0
    session_tool_calls: int = 0
    session_cost_micros: int = 0
    turn_seconds: float = 0.0
    #: open (not terminated/failed) sessions and running turns per scope, keyed by ``str(Scope)``
    open_sessions: dict[str, int] = field(default_factory=dict)
    running_turns: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Approver:
    """Who may answer an approval: a key's role and user."""

    user_id: str
    role: str


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    act: Act
    subject: Subject
    runtime_id: str | None = None
    runtime_kind: str | None = None
    model: str | None = None
    tool: ToolUse | None = None
    #: Worst-case cost to reserve; ``None`` means the act spends nothing by itself.
    cost_micros: int | None = None
    counters: Counters = field(default_factory=Counters)
    approver: Approver | None = None
    #: Approvers a pending approval named (for ``APPROVAL_RESOLVE``).
    approvers: ApproverRule | None = None
    #: The freshest governance epoch the caller has seen (its key lookup read it).
    epoch: int | None = None
    #: Reserve durably under this name (a turn: ``turn:<id>``), so that whichever replica ends
    #: the act settles it; otherwise the reservation lives in this process.
    hold_as: str | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApproverRule:
    """An ``ask`` rule's approvers: any listed role or named user; empty means team admins."""

    roles: tuple[str, ...] = ()
    users: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyRef:
    id: str
    version: int


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    #: Stable machine-readable reason: ``allowed``, ``budget_exceeded``, ``tool_denied`` ...
    code: str
    reason: str
    policy: PolicyRef | None = None
    scope: str | None = None
    epoch: int = 0
    #: For ``ask``: who may approve and how long the approval stays open.
    approvers: ApproverRule | None = None
    ask_ttl_seconds: float | None = None
    #: Set when the act reserved budget: hand it back to ``settle``.
    reservation: Any = None

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW

    @property
    def policy_id(self) -> str | None:
        return self.policy.id if self.policy else None

    @property
    def policy_version(self) -> int | None:
        return self.policy.version if self.policy else None


ALLOWED_CODE = "allowed"


def allow(reason: str = "no rule forbids it", *, epoch: int = 0) -> Decision:
    return Decision(Outcome.ALLOW, ALLOWED_CODE, reason, epoch=epoch)


def deny(
    code: str,
    reason: str,
    *,
    policy: PolicyRef | None = None,
    scope: str | None = None,
    epoch: int = 0,
) -> Decision:
    return Decision(Outcome.DENY, code, reason, policy=policy, scope=scope, epoch=epoch)
