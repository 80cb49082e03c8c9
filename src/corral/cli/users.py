"""``corral users`` and ``corral whoami``."""

from __future__ import annotations

import typer

from corral.cli import output
from corral.cli.keys import RoleChoice
from corral.cli.output import JsonOpt

app = typer.Typer(no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="Display name."),
    email: str = typer.Option(..., "--email", help="Email address (unique in the org)."),
    team: str | None = typer.Option(None, "--team", help="Team id or name."),
    role: RoleChoice = typer.Option(RoleChoice.DEVELOPER, "--role", help="Role."),
    json_: bool = JsonOpt,
) -> None:
    """Create a user. Give them a key with `corral keys create --user ID`."""
    state = output.use(ctx, json_)
    team_id = state.client.resolve_team(team) if team else None
    body = {"name": name, "email": email, "team_id": team_id, "role": role.value}
    user = state.client.post("/v1/users", body)
    if state.json:
        output.emit_json(user)
    else:
        output.done(f"Created user {user['id']} {user['email']} (role {user['role']})")


@app.command("list")
def list_users(
    ctx: typer.Context,
    team: str | None = typer.Option(None, "--team", help="Only this team (id or name)."),
    json_: bool = JsonOpt,
) -> None:
    """List users."""
    state = output.use(ctx, json_)
    team_id = state.client.resolve_team(team) if team else None
    items = state.client.list_all("/v1/users", {"team_id": team_id})
    if state.json:
        output.emit_json({"data": items, "next_cursor": None})
        return
    output.table(
        ["ID", "NAME", "EMAIL", "TEAM", "ROLE", "CREATED"],
        (
            [u["id"], u["name"], u["email"], u["team_id"], u["role"], output.when(u["created_at"])]
            for u in items
        ),
        empty="no users",
    )


def whoami(ctx: typer.Context, json_: bool = JsonOpt) -> None:
    """Show the user, key, org, team and role behind the API key in use."""
    state = output.use(ctx, json_)
    me = state.client.get("/v1/me")
    if state.json:
        output.emit_json(me)
        return
    output.details(
        [
            ("url", state.client.url),
            ("user", me["user_id"]),
            ("key", me["key_id"]),
            ("org", me["org_id"]),
            ("team", me["team_id"]),
            ("role", me["role"]),
        ]
    )
