"""``corral policies``: governance rules on the org, a team, an agent or a key, with history."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import typer

from corral.cli import output
from corral.cli.output import JsonOpt

app = typer.Typer(no_args_is_help=True)

PolicyArg = typer.Argument(..., metavar="ID", help="Policy id (pol_...).")
BodyOpt = typer.Option(None, "--body", help="The rule as a JSON object.")
FileOpt = typer.Option(None, "--file", help="Read the rule from a JSON file ('-' for stdin).")
ScopeHelp = "KIND:ID or KIND:NAME (team:platform, agent:helper), or 'org' for your organization."
KINDS = ("tool", "model", "runtime", "limits")
#: The options that build each kind's body.
RULE_OPTIONS = {
    "tool": {"--effect", "--tool", "--server", "--arg-prefix", "--arg-glob", "--arg-regex",
             "--approver-role", "--approver-user"},
    "model": {"--allow", "--deny"},
    "runtime": {"--allow", "--deny"},
    "limits": {"--set"},
}  # fmt: skip


def _read_body(body: str | None, file: Path | None) -> dict[str, Any] | None:
    if body is not None and file is not None:
        raise typer.BadParameter("give --body or --file, not both")
    if file is not None:
        try:
            text = sys.stdin.read() if str(file) == "-" else file.read_text()
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot read {file}: {exc.strerror}", param_hint="--file"
            ) from None
        return output.json_object("--file", text)
    return None if body is None else output.json_object("--body", body)


def _pairs(option: str, values: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"use NAME=VALUE, not {value!r}", param_hint=option)
        pairs.append((name.strip(), rest))
    return pairs


def _number(option: str, name: str, text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise typer.BadParameter(f"{name}: {text!r} is not a number", param_hint=option)
    return value


def _tool_body(
    effect: str | None,
    tools: list[str],
    servers: list[str],
    arguments: dict[str, Any],
    roles: list[str],
    users: list[str],
) -> dict[str, Any]:
    if effect is None:
        raise typer.BadParameter(
            "a tool rule needs --effect allow, deny or ask", param_hint="--effect"
        )
    body: dict[str, Any] = {"effect": effect}
    if tools:
        body["tools"] = tools
    if servers:
        body["servers"] = servers
    if arguments:
        body["arguments"] = arguments
    if roles or users:
        body["approvers"] = {"roles": roles, "users": users}
    return body


def _list_body(kind: str, allow: list[str], deny: list[str]) -> dict[str, Any]:
    if bool(allow) == bool(deny):
        raise typer.BadParameter(f"a {kind} rule takes --allow PATTERN ... or --deny PATTERN ...")
    field = "models" if kind == "model" else "runtimes"
    return {"effect": "allow" if allow else "deny", field: allow or deny}


def _print_policy(policy: dict[str, Any]) -> None:
    output.details(
        [
            ("id", policy["id"]),
            ("scope", policy["scope"]),
            ("kind", policy["kind"]),
            ("version", policy["version"]),
            ("enabled", policy["enabled"]),
            ("description", policy["description"]),
            ("created by", policy["created_by"]),
            ("created", output.when(policy["created_at"])),
            ("updated", output.when(policy["updated_at"])),
        ]
    )
    output.stdout.print("\n[bold]body[/bold]")
    output.stdout.print(json.dumps(policy["body"], indent=2, ensure_ascii=False), markup=False)


def _show(state: output.State, policy: dict[str, Any], message: str) -> None:
    if state.json:
        output.emit_json(policy)
    else:
        output.done(message)


@app.command("add")
def add(
    ctx: typer.Context,
    scope: str = typer.Option(..., "--scope", help=ScopeHelp),
    kind: str = typer.Option(..., "--kind", help="tool, model, runtime or limits."),
    body: str | None = BodyOpt,
    file: Path | None = FileOpt,
    effect: str | None = typer.Option(None, "--effect", help="Tool rules: allow, deny or ask."),
    tools: list[str] | None = typer.Option(
        None, "--tool", metavar="PATTERN", help="Tool name pattern (repeat)."
    ),
    servers: list[str] | None = typer.Option(
        None, "--server", metavar="PATTERN", help="MCP server pattern (repeat)."
    ),
    arg_prefix: list[str] | None = typer.Option(
        None, "--arg-prefix", metavar="ARG=TEXT", help="Argument starts with TEXT (repeat)."
    ),
    arg_glob: list[str] | None = typer.Option(
        None, "--arg-glob", metavar="ARG=PATTERN", help="Argument matches a glob (repeat)."
    ),
    arg_regex: list[str] | None = typer.Option(
        None, "--arg-regex", metavar="ARG=REGEX", help="Argument matches a regex (repeat)."
    ),
    roles: list[str] | None = typer.Option(
        None, "--approver-role", metavar="ROLE", help="Ask rules: a role that may approve (repeat)."
    ),
    users: list[str] | None = typer.Option(
        None,
        "--approver-user",
        metavar="USER_ID",
        help="Ask rules: a user id that may approve (repeat).",
    ),
    allow: list[str] | None = typer.Option(
        None, "--allow", metavar="PATTERN", help="Model/runtime rules: allowed pattern (repeat)."
    ),
    deny: list[str] | None = typer.Option(
        None, "--deny", metavar="PATTERN", help="Model/runtime rules: denied pattern (repeat)."
    ),
    limits: list[str] | None = typer.Option(
        None, "--set", metavar="LIMIT=N", help="Limits rules: one limit (repeat)."
    ),
    disabled: bool = typer.Option(False, "--disabled", help="Store it switched off."),
    description: str | None = typer.Option(None, "--description", help="What it is for."),
    json_: bool = JsonOpt,
) -> None:
    """Attach a rule: give its body (--body/--file) or build it from the options of its kind."""
    state = output.use(ctx, json_)
    if kind not in KINDS:
        raise typer.BadParameter(f"use one of {', '.join(KINDS)}", param_hint="--kind")
    rule = _read_body(body, file)
    given = {
        "--effect": effect, "--tool": tools, "--server": servers, "--arg-prefix": arg_prefix,
        "--arg-glob": arg_glob, "--arg-regex": arg_regex, "--approver-role": roles,
        "--approver-user": users, "--allow": allow, "--deny": deny, "--set": limits,
    }  # fmt: skip
    used = [name for name, value in given.items() if value]
    if rule is not None and used:
        raise typer.BadParameter("give either a body (--body/--file) or the rule's options")
    stray = [name for name in used if name not in RULE_OPTIONS[kind]]
    if stray:
        raise typer.BadParameter(f"{stray[0]} does not apply to {kind} rules")
    if rule is None and kind == "tool":
        arguments: dict[str, Any] = {}
        for option, test, values in (
            ("--arg-prefix", "prefix", arg_prefix),
            ("--arg-glob", "glob", arg_glob),
            ("--arg-regex", "regex", arg_regex),
        ):
            arguments.update({n: {test: v} for n, v in _pairs(option, values or [])})
        rule = _tool_body(effect, tools or [], servers or [], arguments, roles or [], users or [])
    elif rule is None and kind in ("model", "runtime"):
        rule = _list_body(kind, allow or [], deny or [])
    elif rule is None:
        rule = {n: _number("--set", n, v) for n, v in _pairs("--set", limits or [])}
    client = state.client
    payload = {
        "scope": client.resolve_scope(scope),
        "kind": kind,
        "body": rule,
        "enabled": not disabled,
        "description": description,
    }
    created = client.post("/v1/policies", payload)
    _show(state, created, f"Created policy {created['id']} ({kind} on {created['scope']})")


@app.command("list")
def list_policies(
    ctx: typer.Context,
    scope: str | None = typer.Option(None, "--scope", help="Only this scope. " + ScopeHelp),
    kind: str | None = typer.Option(None, "--kind", help="Only this kind."),
    json_: bool = JsonOpt,
) -> None:
    """List the policies you can see."""
    state = output.use(ctx, json_)
    client = state.client
    params = {"scope": client.resolve_scope(scope) if scope else None, "kind": kind}
    items = client.list_all("/v1/policies", params)
    if state.json:
        output.emit_json({"data": items, "next_cursor": None})
        return
    output.table(
        ["ID", "SCOPE", "KIND", "VERSION", "ENABLED", "BODY", "DESCRIPTION", "UPDATED"],
        (
            [
                p["id"],
                p["scope"],
                p["kind"],
                p["version"],
                p["enabled"],
                p["body"],
                p["description"],
                output.when(p["updated_at"]),
            ]
            for p in items
        ),
        empty="no policies",
    )


@app.command("show")
def show(ctx: typer.Context, policy: str = PolicyArg, json_: bool = JsonOpt) -> None:
    """Show a policy and its rule."""
    state = output.use(ctx, json_)
    found = state.client.get(f"/v1/policies/{policy}")
    if state.json:
        output.emit_json(found)
    else:
        _print_policy(found)


@app.command("update")
def update(
    ctx: typer.Context,
    policy: str = PolicyArg,
    body: str | None = BodyOpt,
    file: Path | None = FileOpt,
    enabled: bool | None = typer.Option(
        None, "--enable/--disable", help="Switch the rule on or off.", show_default=False
    ),
    description: str | None = typer.Option(None, "--description", help="New description."),
    version: int | None = typer.Option(
        None, "--version", min=1, help="Only if the policy is still at this version."
    ),
    json_: bool = JsonOpt,
) -> None:
    """Change a policy: a new version, effective at once."""
    state = output.use(ctx, json_)
    changes: dict[str, Any] = {}
    rule = _read_body(body, file)
    if rule is not None:
        changes["body"] = rule
    if enabled is not None:
        changes["enabled"] = enabled
    if description is not None:
        changes["description"] = description
    if not changes:
        raise typer.BadParameter("nothing to change: give at least one option")
    if version is not None:
        changes["version"] = version
    updated = state.client.request("PATCH", f"/v1/policies/{policy}", json_body=changes)
    _show(state, updated, f"Updated policy {updated['id']}: now version {updated['version']}")


@app.command("delete")
def delete(
    ctx: typer.Context,
    policy: str = PolicyArg,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    json_: bool = JsonOpt,
) -> None:
    """Delete a policy (its history stays readable)."""
    state = output.use(ctx, json_)
    if not yes and sys.stdin.isatty() and not typer.confirm(f"Delete policy {policy}?"):
        raise typer.Exit(1)
    state.client.request("DELETE", f"/v1/policies/{policy}")
    if not state.json:
        output.done(f"Deleted policy {policy}")


@app.command("history")
def history(ctx: typer.Context, policy: str = PolicyArg, json_: bool = JsonOpt) -> None:
    """Every version of a policy, oldest first."""
    state = output.use(ctx, json_)
    page = state.client.get(f"/v1/policies/{policy}/versions")
    if state.json:
        output.emit_json(page)
        return
    output.table(
        ["VERSION", "ENABLED", "DELETED", "BY", "AT", "BODY"],
        (
            [
                v["version"],
                v["enabled"],
                v["deleted"],
                v["changed_by"],
                output.when(v["changed_at"]),
                v["body"],
            ]
            for v in page["data"]
        ),
        empty="no versions",
    )
