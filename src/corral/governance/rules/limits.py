"""Limits: concurrency per scope, request rate per key, and runaway guards per session and turn.

``max_open_sessions`` and ``max_running_turns`` count at the scope the policy is attached to (a
team's limit counts the team's sessions). Every other limit applies to each session or key under
the scope; when several scopes set one, the smallest wins (a narrower scope may only tighten).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corral.domain.errors import InvalidRequest
from corral.domain.governance import Act, Counters, Decision, Outcome, PolicyRef
from corral.domain.money import usd_to_micros

#: Counted at the policy's own scope.
SCOPED = ("max_open_sessions", "max_running_turns")
#: Applied to every session (or key) under the scope; the tightest wins.
PER_SESSION = (
    "requests_per_minute",
    "max_turns_per_session",
    "max_tool_calls_per_turn",
    "max_tool_calls_per_session",
    "max_turn_seconds",
    "max_session_cost_usd",
    "loop_guard_repeats",
    "turn_estimate_usd",
)
FIELDS = SCOPED + PER_SESSION


@dataclass(frozen=True, slots=True)
class LimitRule:
    ref: PolicyRef
    scope: str
    values: dict[str, float]


def compile_limits(ref: PolicyRef, scope: str, body: dict[str, Any]) -> LimitRule:
    unknown = set(body) - set(FIELDS)
    if unknown:
        raise InvalidRequest(
            f"unknown limits {sorted(unknown)}; known: {list(FIELDS)}", code="invalid_policy"
        )
    if not body:
        raise InvalidRequest("a limits policy sets at least one limit", code="invalid_policy")
    for name, value in body.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise InvalidRequest(f"limit {name!r} must be a number >= 0", code="invalid_policy")
    return LimitRule(ref, scope, {k: float(v) for k, v in body.items()})


@dataclass(frozen=True, slots=True)
class Effective:
    """The tightest value of each per-session limit, and the rule that set it."""

    values: dict[str, float] = field(default_factory=dict)
    sources: dict[str, LimitRule] = field(default_factory=dict)

    def get(self, name: str) -> float | None:
        return self.values.get(name)

    def micros(self, name: str) -> int | None:
        value = self.values.get(name)
        return None if value is None else usd_to_micros(value)


def effective(rules: list[LimitRule]) -> Effective:
    values: dict[str, float] = {}
    sources: dict[str, LimitRule] = {}
    for rule in rules:
        for name in PER_SESSION:
            value = rule.values.get(name)
            if value is not None and (name not in values or value < values[name]):
                values[name], sources[name] = value, rule
    return Effective(values, sources)


def _over(rule: LimitRule, name: str, detail: str, epoch: int) -> Decision:
    return Decision(Outcome.DENY, "limit_exceeded", f"{name} reached: {detail}", rule.ref,
                    rule.scope, epoch)  # fmt: skip


def check(
    act: Act, rules: list[LimitRule], limits: Effective, counters: Counters, epoch: int
) -> Decision | None:
    """Deny an act that would take a scope or session over one of its limits."""
    starts_session = act is Act.SESSION_CREATE
    starts_turn = act in (Act.SESSION_CREATE, Act.MESSAGE_SEND)
    for rule in rules:
        if starts_session and "max_open_sessions" in rule.values:
            held = counters.open_sessions.get(rule.scope, 0)
            if held >= rule.values["max_open_sessions"]:
                return _over(rule, "max_open_sessions", f"{held} open in {rule.scope}", epoch)
        if starts_turn and "max_running_turns" in rule.values:
            held = counters.running_turns.get(rule.scope, 0)
            if held >= rule.values["max_running_turns"]:
                return _over(rule, "max_running_turns", f"{held} running in {rule.scope}", epoch)
    if act is Act.MESSAGE_SEND:
        cap = limits.get("max_turns_per_session")
        if cap is not None and counters.session_turns >= cap:
            src = limits.sources["max_turns_per_session"]
            return _over(src, "max_turns_per_session", f"{counters.session_turns} turns", epoch)
        cost_cap = limits.micros("max_session_cost_usd")
        if cost_cap is not None and counters.session_cost_micros >= cost_cap:
            src = limits.sources["max_session_cost_usd"]
            return _over(src, "max_session_cost_usd", "the session spent its cap", epoch)
    return None
