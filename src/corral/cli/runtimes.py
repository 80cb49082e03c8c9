"""``corral runtimes``: register runtimes, store their credentials, check their health.

Credentials are write-only: the API never returns them and this module never prints them, not
even in error messages. Reading them from stdin or a file keeps them out of shell history.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from corral.cli import output
from corral.cli.output import JsonOpt
from corral.runtimes import registry

app = typer.Typer(no_args_is_help=True)

RuntimeArg = typer.Argument(..., metavar="ID_OR_NAME", help="Runtime id (rt_...) or name.")


def _print_runtime(rt: dict[str, Any]) -> None:
    output.details(
        [
            ("id", rt["id"]),
            ("name", rt["name"]),
            ("kind", rt["kind"]),
            ("url", rt["base_url"]),
            ("config", rt["config"] or None),
            ("created", output.when(rt["created_at"])),
            ("updated", output.when(rt["updated_at"])),
        ]
    )
    caps = rt.get("capabilities") or {}
    supported = sorted(name for name, ok in caps.items() if ok)
    missing = sorted(name for name, ok in caps.items() if not ok)
    output.stdout.print()
    output.details([("capabilities", ", ".join(supported)), ("not supported", ", ".join(missing))])
    output.stdout.print()
    output.table(
        ["CREDENTIAL SCOPE", "SCOPE ID", "SET", "UPDATED"],
        (
            [c["scope_type"], c["scope_id"], c["set"], output.when(c["updated_at"])]
            for c in rt.get("credentials") or []
        ),
        empty="no credentials set",
    )


@app.command("add")
def add(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="A unique name, e.g. 'oc-prod'."),
    kind: str = typer.Option(..., "--kind", help=f"Runtime kind: {', '.join(registry.kinds())}."),
    url: str = typer.Option(..., "--url", help="The runtime's base URL."),
    config: str | None = typer.Option(None, "--config", help="Extra settings, a JSON object."),
    json_: bool = JsonOpt,
) -> None:
    """Register a runtime."""
    state = output.use(ctx, json_)
    body: dict[str, Any] = {"name": name, "kind": kind, "base_url": url}
    if config is not None:
        body["config"] = output.json_object("--config", config)
    rt = state.client.post("/v1/runtimes", body)
    if state.json:
        output.emit_json(rt)
    else:
        output.done(
            f"Registered runtime {rt['id']} {rt['name']!r} ({rt['kind']} at {rt['base_url']})"
        )


@app.command("list")
def list_runtimes(ctx: typer.Context, json_: bool = JsonOpt) -> None:
    """List runtimes."""
    state = output.use(ctx, json_)
    items = state.client.list_all("/v1/runtimes")
    if state.json:
        output.emit_json({"data": items, "next_cursor": None})
        return
    output.table(
        ["ID", "NAME", "KIND", "URL", "CREDENTIAL SCOPES", "CREATED"],
        (
            [
                r["id"],
                r["name"],
                r["kind"],
                r["base_url"],
                len(r.get("credentials") or []),
                output.when(r["created_at"]),
            ]
            for r in items
        ),
        empty="no runtimes",
    )


@app.command("show")
def show(ctx: typer.Context, runtime: str = RuntimeArg, json_: bool = JsonOpt) -> None:
    """Show a runtime, its capabilities, and which credential scopes are set (never values)."""
    state = output.use(ctx, json_)
    rt = state.client.get(f"/v1/runtimes/{state.client.resolve_runtime(runtime)}")
    if state.json:
        output.emit_json(rt)
    else:
        _print_runtime(rt)


def _parse_credentials(text: str, source: str) -> dict[str, Any]:
    """A JSON object, or ``KEY=VALUE`` lines. Errors name the line, never its content."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            raise typer.BadParameter("is not a valid JSON object", param_hint=source) from None
        if not isinstance(value, dict):
            raise typer.BadParameter("must be a JSON object", param_hint=source)
        return value
    return _pairs(text.splitlines(), source)


def _pairs(lines: list[str], source: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"entry {number} is not KEY=VALUE", param_hint=source)
        values[key.strip()] = value
    return values


def _read_credentials(from_json: Path | None, pairs: list[str], stdin: bool) -> dict[str, Any]:
    given = sum([from_json is not None, bool(pairs), stdin])
    if given != 1:
        raise typer.BadParameter("give exactly one of --stdin, --from-json FILE or --set k=v")
    if stdin or (from_json is not None and str(from_json) == "-"):
        if sys.stdin.isatty():
            output.note("reading credentials from stdin (JSON or KEY=VALUE lines); end with Ctrl-D")
        return _parse_credentials(sys.stdin.read(), "--stdin")
    if from_json is not None:
        try:
            text = from_json.read_text()
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {from_json}: {exc.strerror}") from None
        return _parse_credentials(text, "--from-json")
    output.warn("note: --set values stay in your shell history; prefer --stdin or --from-json")
    return _pairs(pairs, "--set")


@app.command("set-credentials")
def set_credentials(
    ctx: typer.Context,
    runtime: str = RuntimeArg,
    team: str | None = typer.Option(None, "--team", help="Only for this team (id or name)."),
    agent: str | None = typer.Option(None, "--agent", help="Only for this agent (id or name)."),
    from_json: Path | None = typer.Option(
        None, "--from-json", metavar="FILE", help="A JSON object in a file ('-' for stdin)."
    ),
    pairs: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="One credential (lands in shell history)."
    ),
    stdin: bool = typer.Option(
        False, "--stdin", help="Read a JSON object or KEY=VALUE lines from stdin."
    ),
    json_: bool = JsonOpt,
) -> None:
    """Store credentials for a runtime, a team on it, or one agent on it. Values are never shown."""
    state = output.use(ctx, json_)
    if team and agent:
        raise typer.BadParameter("give --team or --agent, not both")
    values = _read_credentials(from_json, pairs, stdin)
    if not values:
        raise typer.BadParameter("no credentials given")
    client = state.client
    body: dict[str, Any] = {
        "credentials": values,
        "team_id": client.resolve_team(team) if team else None,
        "agent_id": client.resolve_agent(agent) if agent else None,
    }
    rt_id = client.resolve_runtime(runtime)
    rt = client.request("PUT", f"/v1/runtimes/{rt_id}/credentials", json_body=body)
    if state.json:
        output.emit_json(rt)
        return
    scope = f"agent {body['agent_id']}" if agent else f"team {body['team_id']}" if team else "org"
    fields = ", ".join(sorted(values))
    output.done(f"Stored credentials for {rt['name']} ({rt['id']}), scope {scope}: {fields}")


@app.command("health")
def health(ctx: typer.Context, runtime: str = RuntimeArg, json_: bool = JsonOpt) -> None:
    """Ask the runtime whether it is up (exit 1 when it is not reachable)."""
    state = output.use(ctx, json_)
    rt_id = state.client.resolve_runtime(runtime)
    result = state.client.get(f"/v1/runtimes/{rt_id}/health")
    if state.json:
        output.emit_json(result)
        return
    status = "healthy" if result.get("healthy") else "unhealthy"
    output.details([("runtime", rt_id), ("status", status), *sorted(result["detail"].items())])
