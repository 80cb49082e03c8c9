"""``corral sessions trace``: a session's span tree, read from Corral itself."""

from __future__ import annotations

from typing import Any

import typer
from rich.text import Text
from rich.tree import Tree

from corral.cli import output
from corral.cli.output import JsonOpt

_SUMMARY = (
    ("gen_ai.usage.input_tokens", "in"),
    ("gen_ai.usage.output_tokens", "out"),
    ("corral.turn.stop_reason", "stop"),
    ("corral.decision.outcome", ""),
    ("corral.decision.code", ""),
    ("corral.policy.id", "policy"),
    ("corral.approval.decision", ""),
    ("corral.approval.resolved_by", "by"),
    ("error.type", "error"),
)


def _duration(ms: float) -> str:
    return f"{ms / 1000:.2f}s" if ms >= 1000 else f"{ms:.1f}ms"


def _label(span: dict[str, Any]) -> Text:
    attrs = span["attributes"]
    style = "bold red" if span["status"] == "error" else "bold"
    label = Text(span["name"], style=style)
    label.append(f"  {_duration(span['duration_ms'])}", style="cyan")
    facts = [f"{name}={attrs[key]}" if name else str(attrs[key])
             for key, name in _SUMMARY if attrs.get(key) not in (None, "")]  # fmt: skip
    if facts:
        label.append("  " + " ".join(facts), style="dim")
    return label


def _grow(tree: Tree, spans: list[dict[str, Any]]) -> None:
    for span in spans:
        _grow(tree.add(_label(span)), span["children"])


def trace(
    ctx: typer.Context,
    sid: str = typer.Argument(..., metavar="SID", help="Session id (ses_...)."),
    json_: bool = JsonOpt,
) -> None:
    """Print a session's trace: each turn's tool calls, approval waits and decisions."""
    state = output.use(ctx, json_)
    body = state.client.get(f"/v1/sessions/{sid}/trace")
    if state.json:
        output.emit_json(body)
        return
    if not body["spans"]:
        output.note("no spans yet (a turn's spans are stored shortly after it ends)")
        return
    for root in body["spans"]:
        tree = Tree(_label(root))
        _grow(tree, root["children"])
        output.stdout.print(tree)
