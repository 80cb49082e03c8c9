"""Model and runtime allow/deny lists.

At each scope that has allow rules, the name must match one of them (so a narrower scope can only
narrow what a wider one allows); any matching deny rule, at any scope, denies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from corral.domain.errors import InvalidRequest
from corral.domain.governance import Decision, Outcome, PolicyRef
from corral.governance.rules.patterns import any_match, compile_globs


@dataclass(frozen=True, slots=True)
class ListRule:
    ref: PolicyRef
    scope: str
    allow: bool
    patterns: tuple[re.Pattern[str], ...]


def compile_list_rule(ref: PolicyRef, scope: str, body: dict[str, Any], field: str) -> ListRule:
    effect = body.get("effect", "allow")
    if effect not in ("allow", "deny"):
        raise InvalidRequest(f"{field} rules take 'effect': allow or deny", code="invalid_policy")
    patterns = compile_globs(body.get(field), field)
    if not patterns:
        raise InvalidRequest(f"a {field} rule lists {field!r}", code="invalid_policy")
    return ListRule(ref, scope, effect == "allow", patterns)


def evaluate(
    by_scope: list[list[ListRule]], what: str, names: tuple[str | None, ...], epoch: int
) -> Decision | None:
    """Deny when a deny rule matches or a scope's allowlist leaves the name out."""
    for rules in by_scope:
        for rule in rules:
            if not rule.allow and any_match(rule.patterns, *names):
                return Decision(
                    Outcome.DENY, f"{what}_denied", f"{what} {names[0]!r} is denied by policy",
                    rule.ref, rule.scope, epoch,
                )  # fmt: skip
        allows = [r for r in rules if r.allow]
        if allows and not any(any_match(r.patterns, *names) for r in allows):
            return Decision(
                Outcome.DENY, f"{what}_not_allowed",
                f"{what} {names[0]!r} is not in the allowlist of {allows[0].scope}",
                allows[0].ref, allows[0].scope, epoch,
            )  # fmt: skip
    return None
