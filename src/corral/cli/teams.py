"""``corral teams``: the teams of the caller's organization."""

from __future__ import annotations

import typer

from corral.cli import output
from corral.cli.output import JsonOpt

app = typer.Typer(no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context, name: str = typer.Argument(..., help="Team name."), json_: bool = JsonOpt
) -> None:
    """Create a team (admins only)."""
    state = output.use(ctx, json_)
    team = state.client.post("/v1/teams", {"name": name})
    if state.json:
        output.emit_json(team)
    else:
        output.done(f"Created team {team['id']} {team['name']!r}")


@app.command("list")
def list_teams(ctx: typer.Context, json_: bool = JsonOpt) -> None:
    """List teams."""
    state = output.use(ctx, json_)
    items = state.client.list_all("/v1/teams")
    if state.json:
        output.emit_json({"data": items, "next_cursor": None})
        return
    output.table(
        ["ID", "NAME", "CREATED"],
        ([t["id"], t["name"], output.when(t["created_at"])] for t in items),
        empty="no teams",
    )
