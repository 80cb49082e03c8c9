"""Following a session live: its events drawn as a conversation, approvals asked on the spot."""

from __future__ import annotations

import json
import sys
from contextlib import closing
from typing import Any

from corral.cli import output
from corral.cli.client import CliError

# States in which a turn is in flight; ``tail --until-idle`` stops once the session leaves them.
_ACTIVE = frozenset({"running", "waiting_approval", "waiting_input", "cancelling"})
_ANSWERS = {"o": "allow_once", "a": "allow_always", "d": "deny"}
_SHORT = 160  # tool inputs and outputs are cut here: a transcript, not a dump


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
        return short(_content_text(data))
    if kind == "tool.call":
        return short(f"{data.get('name')} {compact(data.get('input') or {})}")
    if kind == "tool.result":
        return short(f"{data.get('name')} → {compact(data.get('output') or '')}")
    if kind == "approval.requested":
        return short(f"{data.get('approval_id')} {data.get('name')} {_asked(data)}")
    if kind == "approval.resolved":
        return f"{data.get('approval_id')} {data.get('decision')}"
    if kind == "input.requested":
        return short(f"{data.get('request_id')} {data.get('kind')} {data.get('prompt') or ''}")
    if kind == "turn.completed":
        return str(data.get("stop_reason"))
    if kind == "session.created":
        return f"native session {data.get('native_session_id')}"
    if kind == "session.state":
        return f"{data.get('previous')} → {data.get('state')}"
    if kind == "usage":
        return f"{data.get('input_tokens', 0)} in / {data.get('output_tokens', 0)} out"
    if kind == "error":
        return short(f"[{data.get('code')}] {data.get('message')}")
    return short(compact(data))


def _content_text(data: dict[str, Any]) -> str:
    parts = data.get("content") or []
    return "".join(str(p.get("text") or "") for p in parts if isinstance(p, dict))


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

    def end_line(self) -> None:
        if not self.at_line_start:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.at_line_start = True
        self.channel = None

    def _text(self, text: str, channel: str) -> None:
        if self.channel != channel:
            self.end_line()
        self.channel = channel
        if channel == "reasoning":
            output.stdout.print(text, style="dim italic", end="", markup=False)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
        self.at_line_start = text.endswith("\n")

    def line(self, text: str, style: str = "dim") -> None:
        self.end_line()
        output.stdout.print(text, style=style, markup=False)

    def render(self, event: dict[str, Any]) -> None:
        kind, data = event.get("type"), event.get("data") or {}
        if kind == "message.delta":
            self.streamed_parts.add(str(data.get("part_id")))
            self._text(str(data.get("text") or ""), str(data.get("channel") or "text"))
        elif kind == "message.completed" and str(data.get("part_id")) not in self.streamed_parts:
            # A runtime that does not stream still gets its text shown, once, whole.
            self._text(_content_text(data) + "\n", str(data.get("channel") or "text"))
        elif kind == "tool.call":
            self._tool_call(data)
        elif kind == "tool.result":
            self._tool_call(data, result=True)
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
        elif kind == "input.requested":
            req = data.get("request_id")
            how = "--result CALL_ID=OUTPUT" if data.get("kind") == "client_tool" else "TEXT"
            self.line(
                f"? the agent waits for you: {data.get('prompt') or data.get('call_ids') or ''} "
                f"— answer with: corral sessions answer {self.session_id} {req} {how}",
                "yellow",
            )
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

    def _tool_call(self, data: dict[str, Any], *, result: bool = False) -> None:
        # A call is reported as pending (often without input yet), then running: show it once,
        # as soon as its input is known, or at the latest when its result arrives.
        call_id = str(data.get("call_id"))
        if call_id in self.shown_calls or (not result and not data.get("input")):
            return
        self.shown_calls.add(call_id)
        self.line(f"⚙ {data.get('name')} {short(compact(data.get('input') or {}))}")


def ask(state: output.State, sid: str, data: dict[str, Any]) -> None:
    """Answer an approval on the spot; skipping leaves it for `sessions approve` elsewhere."""
    approval_id = data.get("approval_id")
    while True:
        try:
            answer = output.stderr.input(
                "allow [o]nce / [a]lways / [d]eny / [s]kip? ", markup=False
            )
        except EOFError:
            answer = "s"
        key = answer.strip().lower()[:1]
        if key == "s" or key in _ANSWERS:
            break
    if key == "s":
        return
    try:
        state.client.post(
            f"/v1/sessions/{sid}/approvals/{approval_id}", {"decision": _ANSWERS[key]}
        )
    except CliError as error:  # e.g. someone else answered first: keep watching regardless
        output.report_error(error, as_json=False)


def follow(
    state: output.State,
    sid: str,
    *,
    after: int,
    turn_id: str | None = None,
    until_idle: bool = False,
    only_turn: bool = False,
    show_input: bool = False,
) -> int:
    """Print a session's events as they come; return the exit code.

    Stops at the end of ``turn_id`` (or of the first turn to end, when it is None), or, for
    ``until_idle``, once the session is no longer running a turn; otherwise at Ctrl-C.
    """
    client = state.client
    renderer = TurnRenderer(sid, show_input=show_input)
    interactive = sys.stdin.isatty() and not state.json
    snapshot = client.get(f"/v1/sessions/{sid}") if until_idle else {}
    current = snapshot.get("state")
    if until_idle and current not in _ACTIVE and after >= snapshot["last_seq"]:
        return 0

    def reconnecting(last: int, reason: str) -> None:
        output.note(f"connection lost ({reason}); resuming after event {last}")

    stop_reason: str | None = None
    try:
        with closing(client.stream_events(sid, after, on_reconnect=reconnecting)) as events:
            for event in events:
                kind, data = event.get("type"), event.get("data") or {}
                event_turn = event.get("turn_id") or data.get("turn_id")
                if only_turn and event_turn != turn_id:
                    continue
                if state.json:
                    output.emit_line(event)
                else:
                    renderer.render(event)
                if kind == "approval.requested" and interactive:
                    ask(state, sid, data)
                if kind == "session.state":
                    current = data.get("state")
                if until_idle:
                    if event.get("seq", 0) >= snapshot["last_seq"] and current not in _ACTIVE:
                        break
                elif kind == "turn.completed" and turn_id in (None, event_turn):
                    stop_reason = data.get("stop_reason")
                    break
    except KeyboardInterrupt:
        renderer.end_line()
        output.note(f"stopped watching; the session goes on (corral sessions cancel {sid})")
        return 130
    if state.json and not until_idle:
        output.emit_line(client.get(f"/v1/sessions/{sid}"))
    return 1 if stop_reason == "error" else 0
