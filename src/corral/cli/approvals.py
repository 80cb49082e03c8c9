"""``corral approvals``: the inbox of what runtimes asked, across every session you can see."""

from __future__ import annotations

from typing import Any

import typer

from corral.cli import live, output
from corral.cli.output import JsonOpt

app = typer.Typer(no_args_is_help=True)

ApprovalArg = typer.Argument(..., metavar="APR_ID", help="Approval id (apr_...).")


@app.command("list")
def list_(
    ctx: typer.Context,
    status: str | None = typer.Option(
        "pending", "--status", help="pending, resolving, resolved or cancelled ('' for all)."
    ),
    session: str | None = typer.Option(None, "--session", metavar="SID", help="One session."),
    json_: bool = JsonOpt,
) -> None:
    """List approvals, oldest first (pending ones by default)."""
    state = output.use(ctx, json_)
    items = state.client.get("/v1/approvals", status=status or None, session_id=session)
    if state.json:
        output.emit_json(items)
        return
    output.table(
        ["ID", "SESSION", "TOOL", "INPUT", "STATUS", "DECIDED BY", "APPROVERS", "EXPIRES"],
        (
            [
                a["id"],
                a["session_id"],
                a["name"],
                live.short(live.compact(a["input"] or {}), 50),
                a["status"],
                a["decided_by"] or "",
                _approvers(a["approvers"]),
                output.when(a["expires_at"]) if a["expires_at"] else "",
            ]
            for a in items
        ),
        empty="no approvals",
    )


def _approvers(rule: dict[str, Any] | None) -> str:
    if not rule:
        return ""
    return ", ".join([*(f"role:{r}" for r in rule.get("roles", [])), *rule.get("users", [])])


def resolve(ctx: typer.Context, path: str, body: dict[str, Any], as_json: bool) -> None:
    """Answer an approval at ``path`` and say what became of it."""
    state = output.use(ctx, as_json)
    approval = state.client.post(path, body)
    if state.json:
        output.emit_json(approval)
    else:
        output.done(f"Approval {approval['id']}: {approval['decision']}")


@app.command("approve")
def approve(
    ctx: typer.Context,
    approval_id: str = ApprovalArg,
    always: bool = typer.Option(False, "--always", help="Allow this kind of call from now on."),
    json_: bool = JsonOpt,
) -> None:
    """Allow a pending tool call (once, or --always)."""
    decision = "allow_always" if always else "allow_once"
    resolve(ctx, f"/v1/approvals/{approval_id}", {"decision": decision}, json_)


@app.command("deny")
def deny(
    ctx: typer.Context,
    approval_id: str = ApprovalArg,
    message: str | None = typer.Option(None, "--message", help="Tell the agent why."),
    json_: bool = JsonOpt,
) -> None:
    """Deny a pending tool call."""
    resolve(ctx, f"/v1/approvals/{approval_id}", {"decision": "deny", "message": message}, json_)
