"""``corral keys``: API keys. A key's secret is shown once, when created or rotated."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import typer

from corral.cli import output
from corral.cli.output import JsonOpt

app = typer.Typer(no_args_is_help=True)


class RoleChoice(StrEnum):
    # Mirrors corral.domain.roles.Role; the CLI does not import the server's packages.
    ADMIN = "admin"
    TEAM_ADMIN = "team_admin"
    DEVELOPER = "developer"
    VIEWER = "viewer"


def _issued(state: output.State, key: dict[str, Any], verb: str) -> None:
    if state.json:
        output.emit_json(key)
    else:
        output.done(
            f"{verb} key {key['id']} {key['name']!r} (role {key['role']}, user {key['user_id']})"
        )
        # The secret alone on stdout, so `corral keys create ... | tail -1` style scripts work.
        output.stdout.print(key["key"], markup=False)
    output.warn("This key is shown only once: store it now (e.g. in CORRAL_API_KEY).")


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="A label for the key, e.g. 'dee-laptop'."),
    user: str | None = typer.Option(None, "--user", help="Owner user id (default: you)."),
    role: RoleChoice | None = typer.Option(None, "--role", help="Role (default: the user's)."),
    expires_at: str | None = typer.Option(
        None, "--expires-at", help="Expiry: ISO 8601 (UTC if no zone) or a span like 30d."
    ),
    json_: bool = JsonOpt,
) -> None:
    """Create an API key; its secret is printed once."""
    state = output.use(ctx, json_)
    body: dict[str, Any] = {"name": name, "user_id": user}
    if role is not None:
        body["role"] = role.value
    if expires_at is not None:
        body["expires_at"] = output.time_option("--expires-at", expires_at, ago=False)
    _issued(state, state.client.post("/v1/keys", body), "Created")


@app.command("list")
def list_keys(
    ctx: typer.Context,
    user: str | None = typer.Option(None, "--user", help="Only this user's keys."),
    include_revoked: bool = typer.Option(False, "--include-revoked", help="Show revoked too."),
    json_: bool = JsonOpt,
) -> None:
    """List API keys (never their secrets, only the public prefix)."""
    state = output.use(ctx, json_)
    params = {"user_id": user, "include_revoked": "true" if include_revoked else None}
    items = state.client.list_all("/v1/keys", params)
    if state.json:
        output.emit_json({"data": items, "next_cursor": None})
        return
    output.table(
        ["ID", "NAME", "PREFIX", "USER", "ROLE", "CREATED", "LAST USED", "EXPIRES", "REVOKED"],
        (
            [
                k["id"],
                k["name"],
                k["prefix"],
                k["user_id"],
                k["role"],
                output.when(k["created_at"]),
                output.when(k["last_used_at"]),
                output.when(k["expires_at"]),
                output.when(k["revoked_at"]),
            ]
            for k in items
        ),
        empty="no keys",
    )


@app.command("revoke")
def revoke(
    ctx: typer.Context, key_id: str = typer.Argument(..., metavar="ID"), json_: bool = JsonOpt
) -> None:
    """Revoke a key: it stops working at once."""
    state = output.use(ctx, json_)
    key = state.client.post(f"/v1/keys/{key_id}/revoke")
    if state.json:
        output.emit_json(key)
    else:
        output.done(f"Revoked key {key['id']} {key['name']!r}")


@app.command("rotate")
def rotate(
    ctx: typer.Context, key_id: str = typer.Argument(..., metavar="ID"), json_: bool = JsonOpt
) -> None:
    """Issue a successor key (same owner, role, expiry); the old key stops at once."""
    state = output.use(ctx, json_)
    key = state.client.post(f"/v1/keys/{key_id}/rotate")
    _issued(state, key, f"Rotated {key_id} into")
