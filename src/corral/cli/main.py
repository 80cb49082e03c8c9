"""``corral``: the command-line client of the Corral API, plus a few server-side operator commands.

Exit codes: 0 success, 1 any error reported by Corral or on the way to it, 2 a usage error
(Typer's), 130 interrupted.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

from corral.cli import (
    agents,
    approvals,
    audit,
    budgets,
    gateway,
    keys,
    output,
    policies,
    prices,
    runtimes,
    server,
    sessions,
    teams,
    users,
)
from corral.cli.client import DEFAULT_URL, CliError

# Commands whose modules import the whole server (about a second of imports): loaded only when
# invoked or when help lists them, so everyday client commands stay fast. Each module exposes
# ``register(app)``.
_LAZY = {"demo": "corral.cli.demo"}


def _lazy_command(name: str) -> Any:
    try:
        module = importlib.import_module(_LAZY[name])
    except ModuleNotFoundError as exc:
        if exc.name != _LAZY[name]:  # the module is there but one of its imports is not
            raise
        return None
    holder = typer.Typer()
    holder.callback()(lambda: None)  # a callback makes Typer build a group we can look into
    module.register(holder)
    return getattr(typer.main.get_command(holder), "commands", {}).get(name)


class CorralGroup(TyperGroup):
    """The root command: turns every :class:`CliError` into one message and exit code 1."""

    # Contexts and commands are typed Any: depending on its version Typer uses Click or its own
    # vendored copy, and naming either here would tie the CLI to one of them.
    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in _LAZY if n not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = super().get_command(ctx, cmd_name)
        if found is None and cmd_name in _LAZY:
            found = _lazy_command(cmd_name)
            if found is not None:
                self.add_command(found, cmd_name)
        return found

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as error:
            state = ctx.find_object(output.State)
            output.report_error(error, as_json=bool(state and state.json))
            ctx.exit(1)
        finally:
            state = ctx.find_object(output.State)
            if state is not None:
                state.close()


app = typer.Typer(
    cls=CorralGroup,
    name="corral",
    help="Corral: one control plane for every agent runtime.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold API keys or credentials
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib import metadata  # ~40 ms of imports: only when asked

        typer.echo(f"corral {metadata.version('corral')}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    url: str = typer.Option(DEFAULT_URL, "--url", envvar="CORRAL_URL", help="Corral API URL."),
    api_key: str = typer.Option(
        "",
        "--api-key",
        envvar="CORRAL_API_KEY",
        help="API key (prefer the environment variable: flags land in shell history).",
        show_default=False,
    ),
    json_: bool = typer.Option(False, "--json", help="Print the API's JSON on every command."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    ctx.obj = output.State(url=url, api_key=api_key or None, json=json_)


app.add_typer(keys.app, name="keys", help="API keys: create, list, revoke, rotate.")
app.add_typer(teams.app, name="teams", help="Teams.")
app.add_typer(users.app, name="users", help="Users.")
app.command("whoami", help="Show who the API key belongs to.")(users.whoami)
app.add_typer(runtimes.app, name="runtimes", help="Runtimes and their credentials.")
app.add_typer(agents.app, name="agents", help="Agents and their versions.")
app.add_typer(sessions.app, name="sessions", help="Sessions: start, talk, watch, approve.")
app.add_typer(approvals.app, name="approvals", help="Approvals: the inbox across sessions.")
app.add_typer(policies.app, name="policies", help="Governance policies and their history.")
app.add_typer(budgets.app, name="budgets", help="Budgets: spending caps per scope and period.")
app.add_typer(prices.app, name="prices", help="Model prices that budgets count with.")
app.add_typer(audit.app, name="audit", help="Audit trail: list, verify, export, public key.")
server.register(app)
gateway.register(app)


def main() -> None:
    app()
