"""Where results go: the API's JSON for machines (``--json``), Rich for people.

Results go to stdout; notes, warnings and errors go to stderr, so ``corral ... > file`` or a
pipe into ``jq`` only ever sees the result.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from corral.cli.client import DEFAULT_URL, CliError, CorralClient

# soft_wrap: long lines (tool inputs, URLs) stay one line instead of being hard-wrapped at 80
# columns when stdout is not a terminal.
stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = typer.Option(False, "--json", help="Print the API's JSON instead of a table.")


@dataclass
class State:
    """One CLI invocation: where Corral is, with which key, and how to print."""

    url: str = DEFAULT_URL
    api_key: str | None = None
    json: bool = False
    _client: CorralClient | None = field(default=None, repr=False)

    @property
    def client(self) -> CorralClient:
        if self._client is None:
            self._client = CorralClient(self.url, self.api_key)
        return self._client


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


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str) -> None:
    rows = list(rows)
    if not rows:
        stderr.print(empty, style="dim", markup=False)
        return
    grid = Table(box=None, header_style="bold", pad_edge=False)
    for name in columns:
        grid.add_column(name, overflow="fold")
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


# -- session events ----------------------------------------------------------------------------

_SHORT = 160


def compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def short(text: str, limit: int = _SHORT) -> str:
    """First line of ``text``, cut at ``limit``, saying how much was left out."""
    lines = text.strip().splitlines() or [""]
    first = lines[0] if len(lines[0]) <= limit else lines[0][:limit] + "…"
    return first + (f" … (+{len(lines) - 1} lines)" if len(lines) > 1 else "")


def summarize(event: dict[str, Any]) -> str:
    """One line saying what an event is about, for ``sessions events``."""
    kind, data = event.get("type"), event.get("data") or {}
    if kind in ("message.delta", "turn.started"):
        return short(compact(data.get("text") or ""))
    if kind == "message.completed":
        parts = data.get("content") or []
        return short("".join(str(p.get("text") or "") for p in parts if isinstance(p, dict)))
    if kind == "tool.call":
        return short(f"{data.get('name')} {compact(data.get('input') or {})}")
    if kind == "tool.result":
        return short(f"{data.get('name')} → {compact(data.get('output') or '')}")
    if kind == "approval.requested":
        return short(f"{data.get('approval_id')} {data.get('name')} {_asked(data)}")
    if kind == "approval.resolved":
        return f"{data.get('approval_id')} {data.get('decision')}"
    if kind in ("turn.completed", "session.created"):
        return str(data.get("stop_reason") or data.get("native_session_id") or "")
    if kind == "session.state":
        return f"{data.get('previous')} → {data.get('state')}"
    if kind == "usage":
        return f"{data.get('input_tokens', 0)} in / {data.get('output_tokens', 0)} out"
    if kind == "error":
        return short(f"[{data.get('code')}] {data.get('message')}")
    return short(compact(data))


def _asked(data: dict[str, Any]) -> str:
    return str(data.get("description") or compact(data.get("input") or ""))


class TurnRenderer:
    """Draws a session's events as a conversation: text inline, tools and approvals as lines.

    Text deltas are written raw (no Rich markup, no wrapping) so the reply appears exactly as
    the model produced it, token by token.
    """

    def __init__(self, session_id: str, *, show_input: bool = False) -> None:
        self.session_id = session_id
        self.show_input = show_input
        self.at_line_start = True
        self.channel: str | None = None
        self.streamed_parts: set[str] = set()
        self.shown_calls: set[str] = set()
        self.tokens_in = self.tokens_out = 0
        self.cost = 0.0

    def _end_line(self) -> None:
        if not self.at_line_start:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.at_line_start = True
        self.channel = None

    def _text(self, text: str, channel: str) -> None:
        if self.channel != channel:
            self._end_line()
        self.channel = channel
        if channel == "reasoning":
            stdout.print(text, style="dim italic", end="", markup=False)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
        self.at_line_start = text.endswith("\n")

    def line(self, text: str, style: str = "dim") -> None:
        self._end_line()
        stdout.print(text, style=style, markup=False)

    def render(self, event: dict[str, Any]) -> None:
        kind, data = event.get("type"), event.get("data") or {}
        if kind == "message.delta":
            self.streamed_parts.add(str(data.get("part_id")))
            self._text(str(data.get("text") or ""), str(data.get("channel") or "text"))
        elif kind == "message.completed" and str(data.get("part_id")) not in self.streamed_parts:
            # A runtime that does not stream still gets its text shown, once, whole.
            self._text(summarize(event) + "\n", str(data.get("channel") or "text"))
        elif kind == "tool.call":
            self._tool_call(data)
        elif kind == "tool.result":
            self._tool_call(data)
            style = "red" if data.get("is_error") else "dim"
            self.line(f"↳ {short(compact(data.get('output') or ''))}", style)
        elif kind == "approval.requested":
            apr = data.get("approval_id")
            self.line(
                f"? approval {apr} requested: {data.get('name')} {_asked(data)} — answer with: "
                f"corral sessions approve {self.session_id} {apr}",
                "yellow",
            )
        elif kind == "approval.resolved":
            self.line(f"✓ approval {data.get('approval_id')}: {data.get('decision')}")
        elif kind == "error":
            self.line(f"✖ error [{data.get('code')}]: {data.get('message')}", "red")
        elif kind == "usage":
            self.tokens_in += int(data.get("input_tokens") or 0)
            self.tokens_out += int(data.get("output_tokens") or 0)
            self.cost += float(data.get("cost_usd") or 0.0)
        elif kind == "turn.started":
            self.tokens_in = self.tokens_out = 0
            self.cost = 0.0
            if self.show_input:
                self.line(f"> {data.get('text')}", "bold")
        elif kind == "turn.completed":
            self.line(
                f"— {data.get('stop_reason')} · {self.tokens_in} in / {self.tokens_out} out "
                f"tokens · ${self.cost:.6f}"
            )

    def _tool_call(self, data: dict[str, Any]) -> None:
        # A call is reported as pending (often without input yet), then running: show it once,
        # as soon as its input is known (or its result arrives).
        call_id = str(data.get("call_id"))
        if call_id in self.shown_calls or ("input" in data and not data.get("input")):
            if "output" not in data or call_id in self.shown_calls:
                return
        self.shown_calls.add(call_id)
        self.line(f"⚙ {data.get('name')} {short(compact(data.get('input') or {}))}")
