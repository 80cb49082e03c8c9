"""Tool rules: allow, deny or ask a human, by tool name, MCP server and arguments.

A rule matches when every part it names matches: a tool name pattern, a server pattern, and each
argument matcher. Among the rules that match (over all scopes), deny beats ask beats allow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from corral.domain.errors import InvalidRequest
from corral.domain.governance import (
    OUTCOME_RANK,
    ApproverRule,
    Decision,
    Outcome,
    PolicyRef,
    ToolUse,
)
from corral.governance.rules.patterns import any_match, compile_glob, compile_globs

#: How long an ``ask`` waits for a human unless the rule says otherwise.
DEFAULT_ASK_TTL = 15 * 60.0
_ARG_TESTS = ("prefix", "glob", "equals", "regex")
_MCP_NAME = re.compile(r"^mcp__(?P<server>[^_].*?)__(?P<tool>.+)$")


def tool_use(name: str, server: str | None = None, arguments: Any = None) -> ToolUse:
    """A tool use as rules see it; Claude-style ``mcp__server__tool`` names give the server."""
    if server is None:
        found = _MCP_NAME.match(name)
        if found:
            server = found["server"]
    return ToolUse(name, server, arguments if isinstance(arguments, dict) else {})


@dataclass(frozen=True, slots=True)
class ArgumentTest:
    path: tuple[str, ...]
    test: str
    expected: Any
    pattern: re.Pattern[str] | None

    def passes(self, arguments: dict[str, Any]) -> bool:
        value: Any = arguments
        for part in self.path:
            if not isinstance(value, dict) or part not in value:
                return False
            value = value[part]
        if self.test == "equals":
            return bool(value == self.expected)
        text = " ".join(map(str, value)) if isinstance(value, list) else str(value)
        if self.test == "prefix":
            return text.lstrip().startswith(self.expected)
        assert self.pattern is not None
        return self.pattern.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class ToolRule:
    ref: PolicyRef
    scope: str
    effect: Outcome
    names: tuple[re.Pattern[str], ...]
    servers: tuple[re.Pattern[str], ...]
    arguments: tuple[ArgumentTest, ...]
    approvers: ApproverRule
    ask_ttl: float

    def matches(self, tool: ToolUse) -> bool:
        if self.names and not any_match(self.names, tool.name):
            return False
        if self.servers and not any_match(self.servers, tool.server):
            return False
        return all(a.passes(tool.arguments) for a in self.arguments)


def _argument_tests(spec: object) -> tuple[ArgumentTest, ...]:
    if spec is None:
        return ()
    if not isinstance(spec, dict):
        raise InvalidRequest("'arguments' must map argument names to tests", code="invalid_policy")
    tests = []
    for path, test in spec.items():
        if isinstance(test, str):
            test = {"glob": test}
        if not isinstance(test, dict) or len(test) != 1 or next(iter(test)) not in _ARG_TESTS:
            raise InvalidRequest(
                f"argument {path!r}: use one of {list(_ARG_TESTS)}", code="invalid_policy"
            )
        ((kind, expected),) = test.items()
        pattern = None
        if kind == "glob":
            pattern = compile_glob(str(expected))
        elif kind == "regex":
            try:
                pattern = re.compile(str(expected))
            except re.error as exc:
                raise InvalidRequest(f"argument {path!r}: {exc}", code="invalid_policy") from None
        elif kind == "prefix" and not isinstance(expected, str):
            raise InvalidRequest(f"argument {path!r}: prefix must be text", code="invalid_policy")
        tests.append(ArgumentTest(tuple(str(path).split(".")), kind, expected, pattern))
    return tuple(tests)


def _approvers(spec: object) -> ApproverRule:
    if spec is None:
        return ApproverRule()
    if not isinstance(spec, dict) or set(spec) - {"roles", "users"}:
        raise InvalidRequest("'approvers' takes 'roles' and 'users' lists", code="invalid_policy")
    roles, users = spec.get("roles") or [], spec.get("users") or []
    if not all(isinstance(x, str) for x in [*roles, *users]):
        raise InvalidRequest("approvers must be lists of names", code="invalid_policy")
    return ApproverRule(tuple(roles), tuple(users))


def compile_tool_rule(ref: PolicyRef, scope: str, body: dict[str, Any]) -> ToolRule:
    try:
        effect = Outcome(str(body.get("effect")))
    except ValueError:
        raise InvalidRequest(
            "tool rules need 'effect': allow, deny or ask", code="invalid_policy"
        ) from None
    names = compile_globs(body.get("tools"), "tools")
    servers = compile_globs(body.get("servers"), "servers")
    arguments = _argument_tests(body.get("arguments"))
    if not names and not servers:
        raise InvalidRequest("a tool rule names 'tools' or 'servers'", code="invalid_policy")
    ttl = body.get("ask_ttl_seconds", DEFAULT_ASK_TTL)
    if not isinstance(ttl, int | float) or ttl <= 0:
        raise InvalidRequest("'ask_ttl_seconds' must be positive", code="invalid_policy")
    return ToolRule(
        ref, scope, effect, names, servers, arguments, _approvers(body.get("approvers")), ttl
    )


def evaluate(rules: list[ToolRule], tool: ToolUse, epoch: int) -> Decision | None:
    """The strongest matching rule's decision, or ``None`` when no rule speaks to this tool.

    ``rules`` come widest scope first; between equally strong rules the narrower one speaks
    (its approvers, its expiry), so a team can refine what the org asks.
    """
    best: ToolRule | None = None
    for rule in rules:
        if rule.matches(tool) and (
            best is None or OUTCOME_RANK[rule.effect] >= OUTCOME_RANK[best.effect]
        ):
            best = rule
            if rule.effect is Outcome.DENY:
                break
    if best is None:
        return None
    if best.effect is Outcome.ALLOW:
        reason = f"tool {tool.name!r} allowed by policy"
        return Decision(Outcome.ALLOW, "tool_allowed", reason, best.ref, best.scope, epoch)
    if best.effect is Outcome.ASK:
        reason = f"tool {tool.name!r} needs a human's approval"
        return Decision(
            Outcome.ASK, "approval_required", reason, best.ref, best.scope, epoch,
            approvers=best.approvers, ask_ttl_seconds=best.ask_ttl,
        )  # fmt: skip
    reason = f"tool {tool.name!r} denied by policy"
    return Decision(Outcome.DENY, "tool_denied", reason, best.ref, best.scope, epoch)
