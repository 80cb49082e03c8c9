"""Where results go: the API's JSON for machines (``--json``), Rich for people.

Results go to stdout; notes, warnings and errors go to stderr, so ``corral ... > file`` or a
pipe into ``jq`` only ever sees the result.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from corral.cli.client import DEFAULT_URL, CliError, CorralClient

# soft_wrap: long lines (tool inputs, URLs) stay one line instead of being hard-wrapped at 80
# columns when stdout is not a terminal.
stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)
if not stdout.is_terminal and "COLUMNS" not in os.environ:
    # Piped into grep, awk or a file: never fold a row (ids!) to fit an imaginary 80 columns.
    stdout.width = 100_000

JsonOpt = typer.Option(False, "--json", help="Print the API's JSON (machine-readable).")


@dataclass
class State:
    """One CLI invocation: where Corral is, with which key, and how to print."""

    url: str = DEFAULT_URL
    api_key: str | None = field(default=None, repr=False)
    json: bool = False
    _client: CorralClient | None = field(default=None, repr=False)

    @property
    def client(self) -> CorralClient:
        if self._client is None:
            self._client = CorralClient(self.url, self.api_key)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def use(ctx: typer.Context, json_flag: bool = False) -> State:
    """The invocation's state; ``--json`` may be given globally or on the command."""
    state = ctx.find_object(State)
    if state is None:  # a sub-app invoked on its own, e.g. from a test
        state = ctx.ensure_object(State)
    state.json = state.json or json_flag
    return state


# -- results ---------------------------------------------------------------------------------


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def emit_line(data: Any) -> None:
    """One compact JSON value per line (NDJSON), flushed so a reader sees it at once."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def when(value: Any) -> str:
    """ISO timestamps shortened to the second, for tables."""
    if not value:
        return "-"
    text = str(value).replace("T", " ")
    return text[:19]


def cell(value: Any) -> Text:
    """A value as plain text: data such as ``[[tool:...]]`` must never be read as Rich markup."""
    if value is None or value == "":
        return Text("-")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, dict | list):
        return Text(json.dumps(value, ensure_ascii=False))
    return Text(str(value))


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str) -> None:
    rows = list(rows)
    if not rows:
        stderr.print(empty, style="dim", markup=False)
        return
    grid = Table(box=None, header_style="bold", pad_edge=False)
    for index, name in enumerate(columns):
        # The first column is the id: keep it whole, let the others fold.
        grid.add_column(name, overflow="fold", no_wrap=index == 0)
    for row in rows:
        grid.add_row(*(cell(v) for v in row))
    stdout.print(grid)


def details(pairs: Iterable[tuple[str, Any]]) -> None:
    """A resource as aligned ``label  value`` lines."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for label, value in pairs:
        grid.add_row(label, cell(value))
    stdout.print(grid)


def done(message: str) -> None:
    stdout.print(message, markup=False)


def note(message: str) -> None:
    stderr.print(message, style="dim", markup=False)


def warn(message: str) -> None:
    stderr.print(message, style="yellow", markup=False)


def more(next_cursor: str | None) -> None:
    if next_cursor:
        note(f"more results: --cursor {next_cursor}  (or --all)")


# -- errors ----------------------------------------------------------------------------------


def report_error(error: CliError, as_json: bool) -> None:
    if as_json:
        sys.stderr.write(json.dumps(error.problem, ensure_ascii=False) + "\n")
        return
    stderr.print(f"error [{error.code}]: {error.detail}", style="red", markup=False)
    session_id = error.problem.get("session_id")
    if session_id:
        stderr.print(f"  session: {session_id}", style="dim", markup=False)


# -- values from the command line ----------------------------------------------------------------


def time_option(option: str, text: str | None, *, ago: bool = True) -> str | None:
    """An ISO 8601 time, or a span from now (``90s``, ``15m``, ``2h``, ``7d``), as ISO text.

    A span counts back from now (``--since 2h``), or forward when ``ago`` is false
    (``--expires-at 30d``).
    A time without a zone is taken as UTC: the API refuses naive bounds, and guessing the local
    zone would make the same command mean different things on different machines.
    """
    if text is None:
        return None
    span = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if span:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[span.group(2)]
        delta = timedelta(**{unit: int(span.group(1))})
        moment = datetime.now(UTC) - delta if ago else datetime.now(UTC) + delta
    else:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise typer.BadParameter("use ISO 8601 or a span like 2h", param_hint=option) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def json_object(option: str, text: str) -> dict[str, Any]:
    """Parse a JSON object given on the command line, or fail as a usage error (exit 2)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}", param_hint=option) from None
    if not isinstance(value, dict):
        raise typer.BadParameter("must be a JSON object", param_hint=option)
    return value
