"""``corral prices``: what models cost (USD per million tokens), as budgets count it."""

from __future__ import annotations

from urllib.parse import quote

import typer

from corral.cli import output
from corral.cli.output import JsonOpt

app = typer.Typer(no_args_is_help=True)

ModelArg = typer.Argument(..., help="Model name as agents use it, e.g. 'gpt-4o'.")


def _path(model: str) -> str:
    # Model names may hold '/' (the route takes a path); anything else odd is escaped.
    return "/v1/prices/" + quote(model, safe="/")


def _per_mtok(value: float | None) -> str:
    return "-" if value is None else f"${value:g}"


@app.command("list")
def list_prices(ctx: typer.Context, json_: bool = JsonOpt) -> None:
    """Every priced model: Corral's shipped prices and your org's own."""
    state = output.use(ctx, json_)
    page = state.client.get("/v1/prices")
    if state.json:
        output.emit_json(page)
        return
    output.table(
        ["MODEL", "INPUT /MTOK", "OUTPUT /MTOK", "CACHE READ /MTOK", "SOURCE"],
        (
            [
                p["model"],
                _per_mtok(p["input_usd_per_mtok"]),
                _per_mtok(p["output_usd_per_mtok"]),
                _per_mtok(p["cache_read_usd_per_mtok"]),
                p["source"],
            ]
            for p in page["data"]
        ),
        empty="no prices",
    )


@app.command("set")
def set_price(
    ctx: typer.Context,
    model: str = ModelArg,
    input_usd: float = typer.Option(
        ..., "--input", help="USD per million input tokens.", min=0.0, metavar="USD"
    ),
    output_usd: float = typer.Option(
        ..., "--output", help="USD per million output tokens.", min=0.0, metavar="USD"
    ),
    cache_read: float | None = typer.Option(
        None, "--cache-read", help="USD per million cached input tokens.", min=0.0, metavar="USD"
    ),
    json_: bool = JsonOpt,
) -> None:
    """Price a model for your org (replaces the shipped price, if any)."""
    state = output.use(ctx, json_)
    body = {
        "input_usd_per_mtok": input_usd,
        "output_usd_per_mtok": output_usd,
        "cache_read_usd_per_mtok": cache_read,
    }
    price = state.client.request("PUT", _path(model), json_body=body)
    if state.json:
        output.emit_json(price)
        return
    output.done(
        f"Priced {price['model']}: {_per_mtok(price['input_usd_per_mtok'])} in, "
        f"{_per_mtok(price['output_usd_per_mtok'])} out per million tokens"
    )


@app.command("delete")
def delete(ctx: typer.Context, model: str = ModelArg, json_: bool = JsonOpt) -> None:
    """Remove your org's price of a model (the shipped price, if any, applies again)."""
    state = output.use(ctx, json_)
    state.client.request("DELETE", _path(model))
    if not state.json:
        output.done(f"Deleted the org's price of {model}")
