"""``corral budgets``: spending caps per scope and period, with what each window has used."""

from __future__ import annotations

import sys
from typing import Any

import typer

from corral.cli import output
from corral.cli.output import JsonOpt

app = typer.Typer(no_args_is_help=True)

BudgetArg = typer.Argument(..., metavar="ID", help="Budget id (bud_...).")
ScopeHelp = "KIND:ID or KIND:NAME (team:platform, agent:helper), or 'org' for your organization."


def usd(value: float | None) -> str:
    """Dollars and cents; sub-cent amounts (a few tokens' worth) keep their micro-dollars."""
    if value is None:
        return "-"
    return f"${value:.6f}" if 0 < value < 0.01 else f"${value:,.2f}"


def _print_budget(budget: dict[str, Any]) -> None:
    output.details(
        [
            ("id", budget["id"]),
            ("scope", budget["scope"]),
            ("period", f"{budget['period']} ({budget['timezone']})"),
            ("limit", usd(budget["limit_usd"])),
            ("spent", usd(budget["spent_usd"])),
            ("reserved", usd(budget["reserved_usd"])),
            ("remaining", usd(budget["remaining_usd"])),
            ("soft limit", f"{budget['soft_percent']}%" if budget["soft_percent"] else None),
            ("soft exceeded", budget["soft_exceeded"]),
            ("window", f"{output.when(budget['window_start'])} .. "
                       f"{output.when(budget['window_end'])}"),
            ("version", budget["version"]),
            ("updated", output.when(budget["updated_at"])),
        ]
    )  # fmt: skip


@app.command("set")
def set_budget(
    ctx: typer.Context,
    scope: str = typer.Argument(..., help=ScopeHelp),
    limit_usd: float = typer.Argument(..., min=0, metavar="LIMIT_USD", help="The cap, in USD."),
    period: str = typer.Option("total", "--period", help="total, daily, weekly or monthly."),
    tz: str = typer.Option("UTC", "--tz", help="IANA timezone where windows start."),
    soft: int | None = typer.Option(
        None, "--soft", min=1, max=100, help="Flag the budget past this percent spent."
    ),
    json_: bool = JsonOpt,
) -> None:
    """Create or replace the budget of SCOPE for --period."""
    state = output.use(ctx, json_)
    client = state.client
    body = {
        "scope": client.resolve_scope(scope),
        "limit_usd": limit_usd,
        "period": period,
        "timezone": tz,
        "soft_percent": soft,
    }
    budget = client.request("PUT", "/v1/budgets", json_body=body)
    if state.json:
        output.emit_json(budget)
        return
    output.done(
        f"Budget {budget['id']}: {usd(budget['limit_usd'])} {budget['period']} on "
        f"{budget['scope']} (version {budget['version']})"
    )


@app.command("list")
def list_budgets(
    ctx: typer.Context,
    scope: str | None = typer.Option(None, "--scope", help="Only this scope. " + ScopeHelp),
    json_: bool = JsonOpt,
) -> None:
    """List the budgets you can see, with the current window's spend."""
    state = output.use(ctx, json_)
    client = state.client
    params = {"scope": client.resolve_scope(scope) if scope else None}
    items = client.list_all("/v1/budgets", params)
    if state.json:
        output.emit_json({"data": items, "next_cursor": None})
        return
    output.table(
        ["ID", "SCOPE", "PERIOD", "LIMIT", "SPENT", "RESERVED", "REMAINING", "SOFT", "WINDOW END"],
        (
            [
                b["id"],
                b["scope"],
                b["period"],
                usd(b["limit_usd"]),
                usd(b["spent_usd"]),
                usd(b["reserved_usd"]),
                usd(b["remaining_usd"]),
                "exceeded" if b["soft_exceeded"] else b["soft_percent"] and f"{b['soft_percent']}%",
                output.when(b["window_end"]),
            ]
            for b in items
        ),
        empty="no budgets",
    )


@app.command("show")
def show(ctx: typer.Context, budget: str = BudgetArg, json_: bool = JsonOpt) -> None:
    """Show a budget and its current window."""
    state = output.use(ctx, json_)
    found = state.client.get(f"/v1/budgets/{budget}")
    if state.json:
        output.emit_json(found)
    else:
        _print_budget(found)


@app.command("delete")
def delete(
    ctx: typer.Context,
    budget: str = BudgetArg,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    json_: bool = JsonOpt,
) -> None:
    """Delete a budget: its scope is no longer capped for that period."""
    state = output.use(ctx, json_)
    if not yes and sys.stdin.isatty() and not typer.confirm(f"Delete budget {budget}?"):
        raise typer.Exit(1)
    state.client.request("DELETE", f"/v1/budgets/{budget}")
    if not state.json:
        output.done(f"Deleted budget {budget}")
