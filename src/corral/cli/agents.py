"""``corral agents``: define agents, change them (each change is a new version), pause them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from corral.cli import output
from corral.cli.output import JsonOpt

app = typer.Typer(no_args_is_help=True)

AgentArg = typer.Argument(..., metavar="ID_OR_NAME", help="Agent id (agt_...) or name.")
InstructionsOpt = typer.Option(
    None, "--instructions", help="System instructions: TEXT, or @FILE to read them from a file."
)
ToolOpt = typer.Option(None, "--tool", metavar="TOOL", help="A tool the agent may use (repeat).")
MetadataOpt = typer.Option(None, "--metadata", help="Free-form metadata, a JSON object.")


def _instructions(value: str | None) -> str | None:
    if value is None or not value.startswith("@"):
        return value
    path = Path(value[1:])
    try:
        return path.read_text()
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot read {path}: {exc.strerror}", param_hint="--instructions"
        ) from None


def _print_agent(agent: dict[str, Any]) -> None:
    output.details(
        [
            ("id", agent["id"]),
            ("name", agent["name"]),
            ("version", agent["version"]),
            ("paused", agent["paused"]),
            ("team", agent["team_id"]),
            ("runtime", agent["runtime_id"]),
            ("model", agent["model"]),
            ("tools", ", ".join(agent["tools"])),
            ("metadata", agent["metadata"] or None),
            ("created", output.when(agent["created_at"])),
            ("updated", output.when(agent["updated_at"])),
        ]
    )
    if agent.get("instructions"):
        output.stdout.print("\n[bold]instructions[/bold]")
        output.stdout.print(agent["instructions"], markup=False)


def _show(state: output.State, agent: dict[str, Any], message: str) -> None:
    if state.json:
        output.emit_json(agent)
    else:
        output.done(message)


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="Unique within the team."),
    runtime: str = typer.Option(..., "--runtime", help="Runtime id or name."),
    team: str | None = typer.Option(None, "--team", help="Team id or name (default: yours)."),
    model: str | None = typer.Option(None, "--model", help="e.g. 'anthropic/claude-sonnet-4'."),
    instructions: str | None = InstructionsOpt,
    tools: list[str] | None = ToolOpt,
    metadata: str | None = MetadataOpt,
    json_: bool = JsonOpt,
) -> None:
    """Define an agent (version 1)."""
    state = output.use(ctx, json_)
    client = state.client
    body: dict[str, Any] = {
        "name": name,
        "runtime_id": client.resolve_runtime(runtime),
        "team_id": client.resolve_team(team) if team else None,
        "model": model,
        "instructions": _instructions(instructions),
        "tools": tools or [],
    }
    if metadata is not None:
        body["metadata"] = output.json_object("--metadata", metadata)
    agent = client.post("/v1/agents", body)
    _show(state, agent, f"Created agent {agent['id']} {agent['name']!r} (version 1)")


@app.command("list")
def list_agents(
    ctx: typer.Context,
    team: str | None = typer.Option(None, "--team", help="Only this team (id or name)."),
    runtime: str | None = typer.Option(None, "--runtime", help="Only this runtime (id or name)."),
    json_: bool = JsonOpt,
) -> None:
    """List agents."""
    state = output.use(ctx, json_)
    client = state.client
    params = {
        "team_id": client.resolve_team(team) if team else None,
        "runtime_id": client.resolve_runtime(runtime) if runtime else None,
    }
    items = client.list_all("/v1/agents", params)
    if state.json:
        output.emit_json({"data": items, "next_cursor": None})
        return
    output.table(
        ["ID", "NAME", "VERSION", "PAUSED", "RUNTIME", "TEAM", "MODEL", "UPDATED"],
        (
            [
                a["id"],
                a["name"],
                a["version"],
                a["paused"],
                a["runtime_id"],
                a["team_id"],
                a["model"],
                output.when(a["updated_at"]),
            ]
            for a in items
        ),
        empty="no agents",
    )


@app.command("show")
def show(
    ctx: typer.Context,
    agent: str = AgentArg,
    version: int | None = typer.Option(None, "--version", min=1, help="An older version."),
    json_: bool = JsonOpt,
) -> None:
    """Show an agent (its current version, or --version N)."""
    state = output.use(ctx, json_)
    found = state.client.get(f"/v1/agents/{state.client.resolve_agent(agent)}", version=version)
    if state.json:
        output.emit_json(found)
    else:
        _print_agent(found)


@app.command("update")
def update(
    ctx: typer.Context,
    agent: str = AgentArg,
    name: str | None = typer.Option(None, "--name", help="New name."),
    runtime: str | None = typer.Option(None, "--runtime", help="Move to this runtime."),
    model: str | None = typer.Option(None, "--model", help="New model."),
    instructions: str | None = InstructionsOpt,
    tools: list[str] | None = ToolOpt,
    clear_tools: bool = typer.Option(False, "--clear-tools", help="Remove every tool."),
    metadata: str | None = MetadataOpt,
    json_: bool = JsonOpt,
) -> None:
    """Change an agent: creates a new version; running sessions keep theirs."""
    state = output.use(ctx, json_)
    client = state.client
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if runtime is not None:
        changes["runtime_id"] = client.resolve_runtime(runtime)
    if model is not None:
        changes["model"] = model
    if instructions is not None:
        changes["instructions"] = _instructions(instructions)
    if tools or clear_tools:
        changes["tools"] = [] if clear_tools else tools
    if metadata is not None:
        changes["metadata"] = output.json_object("--metadata", metadata)
    if not changes:
        raise typer.BadParameter("nothing to change: give at least one option")
    agent_id = client.resolve_agent(agent)
    updated = client.request("PATCH", f"/v1/agents/{agent_id}", json_body=changes)
    _show(state, updated, f"Updated agent {updated['id']}: now version {updated['version']}")


@app.command("versions")
def versions(ctx: typer.Context, agent: str = AgentArg, json_: bool = JsonOpt) -> None:
    """List an agent's versions."""
    state = output.use(ctx, json_)
    items = state.client.get(f"/v1/agents/{state.client.resolve_agent(agent)}/versions")
    if state.json:
        output.emit_json(items)
        return
    output.table(
        ["VERSION", "NAME", "RUNTIME", "MODEL", "TOOLS", "BY", "CREATED"],
        (
            [
                v["version"],
                v["name"],
                v["runtime_id"],
                v["model"],
                ", ".join(v["tools"]),
                v["created_by"],
                output.when(v["created_at"]),
            ]
            for v in items
        ),
        empty="no versions",
    )


@app.command("pause")
def pause(ctx: typer.Context, agent: str = AgentArg, json_: bool = JsonOpt) -> None:
    """Pause an agent: no new sessions or turns until resumed."""
    state = output.use(ctx, json_)
    found = state.client.post(f"/v1/agents/{state.client.resolve_agent(agent)}/pause")
    _show(state, found, f"Paused agent {found['id']} {found['name']!r}")


@app.command("resume")
def resume(ctx: typer.Context, agent: str = AgentArg, json_: bool = JsonOpt) -> None:
    """Resume a paused agent."""
    state = output.use(ctx, json_)
    found = state.client.post(f"/v1/agents/{state.client.resolve_agent(agent)}/resume")
    _show(state, found, f"Resumed agent {found['id']} {found['name']!r}")


@app.command("delete")
def delete(
    ctx: typer.Context,
    agent: str = AgentArg,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    json_: bool = JsonOpt,
) -> None:
    """Delete an agent."""
    state = output.use(ctx, json_)
    agent_id = state.client.resolve_agent(agent)
    # Ask only a person at a terminal; scripts (no TTY) proceed, as with most CLIs' --yes.
    if not yes and sys.stdin.isatty() and not typer.confirm(f"Delete agent {agent_id}?"):
        raise typer.Exit(1)
    state.client.request("DELETE", f"/v1/agents/{agent_id}")
    if not state.json:
        output.done(f"Deleted agent {agent_id}")
