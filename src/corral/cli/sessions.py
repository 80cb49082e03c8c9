"""``corral sessions``: talk to agents and watch them work, live, from the terminal."""

from __future__ import annotations

from typing import Any

import typer

from corral.cli import approvals as approvals_cli
from corral.cli import live, output
from corral.cli import traces as traces_cli
from corral.cli.output import JsonOpt
from corral.domain.states import SessionState

app = typer.Typer(no_args_is_help=True)

SessionArg = typer.Argument(..., metavar="SID", help="Session id (ses_...).")
ApprovalArg = typer.Argument(..., metavar="APR_ID", help="Approval id (apr_...).")
NoStreamOpt = typer.Option(False, "--no-stream", help="Return at once; do not follow the reply.")
IdemOpt = typer.Option(
    None, "--idempotency-key", metavar="K", help="Retrying with the same key never repeats it."
)


def _exit(code: int) -> None:
    if code:
        raise typer.Exit(code)


@app.command("start")
def start(
    ctx: typer.Context,
    prompt: str | None = typer.Argument(None, help="The first message; omit to start idle."),
    agent: str = typer.Option(..., "--agent", help="Agent id or name."),
    title: str | None = typer.Option(None, "--title", help="A title for the session."),
    no_stream: bool = NoStreamOpt,
    idempotency_key: str | None = IdemOpt,
    json_: bool = JsonOpt,
) -> None:
    """Start a session and stream the agent's reply until the turn ends."""
    state = output.use(ctx, json_)
    body = {"agent_id": state.client.resolve_agent(agent), "input": prompt, "title": title}
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    session = state.client.post("/v1/sessions", {k: v for k, v in body.items() if v}, headers)
    if no_stream or prompt is None:
        if state.json:
            output.emit_json(session)
        else:
            output.done(f"Started session {session['id']} (state {session['state']})")
        return
    if not state.json:
        output.note(f"session {session['id']} · agent {agent}")
    _exit(live.follow(state, session["id"], after=0))


@app.command("send")
def send(
    ctx: typer.Context,
    sid: str = SessionArg,
    text: str = typer.Argument(..., help="The message."),
    no_stream: bool = NoStreamOpt,
    idempotency_key: str | None = IdemOpt,
    json_: bool = JsonOpt,
) -> None:
    """Send a message to a session and stream the reply until the turn ends."""
    state = output.use(ctx, json_)
    before = state.client.get(f"/v1/sessions/{sid}")["last_seq"]
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    accepted = state.client.post(f"/v1/sessions/{sid}/messages", {"text": text}, headers)
    if no_stream:
        if state.json:
            output.emit_json(accepted)
        else:
            output.done(f"Sent: turn {accepted['turn_id']} (state {accepted['state']})")
        return
    # A replayed request (same Idempotency-Key) refers to a turn that may lie before `before`:
    # read from the start then, showing only that turn.
    replay = idempotency_key is not None
    code = live.follow(
        state, sid, after=0 if replay else before, turn_id=accepted["turn_id"], only_turn=replay
    )
    _exit(code)


@app.command("list")
def list_sessions(
    ctx: typer.Context,
    agent: str | None = typer.Option(None, "--agent", help="Agent id or name."),
    runtime: str | None = typer.Option(None, "--runtime", help="Runtime id or name."),
    team: str | None = typer.Option(None, "--team", help="Team id or name."),
    user: str | None = typer.Option(None, "--user", help="User id."),
    states: list[SessionState] | None = typer.Option(None, "--state", help="State (repeat)."),
    since: str | None = typer.Option(None, "--since", help="Created after: ISO time or 2h, 7d."),
    until: str | None = typer.Option(None, "--until", help="Created before: ISO time or span."),
    limit: int | None = typer.Option(None, "--limit", min=1, max=200, help="Page size."),
    cursor: str | None = typer.Option(None, "--cursor", help="Continue a previous listing."),
    every: bool = typer.Option(False, "--all", help="Follow every page."),
    json_: bool = JsonOpt,
) -> None:
    """List sessions, newest first, across the fleet you can see."""
    state = output.use(ctx, json_)
    client = state.client
    params: dict[str, Any] = {
        "agent_id": client.resolve_agent(agent) if agent else None,
        "runtime_id": client.resolve_runtime(runtime) if runtime else None,
        "team_id": client.resolve_team(team) if team else None,
        "user_id": user,
        "state": [s.value for s in states or []] or None,
        "created_after": output.time_option("--since", since),
        "created_before": output.time_option("--until", until),
        "limit": limit,
        "cursor": cursor,
    }
    page: dict[str, Any]
    if every:
        page = {"data": client.list_all("/v1/sessions", params), "next_cursor": None}
    else:
        page = client.request("GET", "/v1/sessions", params=params)
    if state.json:
        output.emit_json(page)
        return
    output.table(
        ["ID", "AGENT", "STATE", "TURNS", "TOKENS IN/OUT", "COST $", "TITLE", "CREATED"],
        (
            [
                s["id"],
                s["agent_id"],
                s["state"],
                s["turns"],
                f"{s['input_tokens']}/{s['output_tokens']}",
                f"{s['cost_usd']:.6f}",
                s["title"],
                output.when(s["created_at"]),
            ]
            for s in page["data"]
        ),
        empty="no sessions",
    )
    output.more(page.get("next_cursor"))


@app.command("show")
def show(ctx: typer.Context, sid: str = SessionArg, json_: bool = JsonOpt) -> None:
    """Show a session: state, turns, tokens and cost."""
    state = output.use(ctx, json_)
    s = state.client.get(f"/v1/sessions/{sid}")
    if state.json:
        output.emit_json(s)
        return
    output.details(
        [
            ("id", s["id"]), ("title", s["title"]), ("state", s["state"]),
            ("stop reason", s["stop_reason"]), ("agent", f"{s['agent_id']} v{s['agent_version']}"),
            ("runtime", s["runtime_id"]), ("native id", s["native_session_id"]),
            ("team", s["team_id"]), ("user", s["user_id"]), ("turns", s["turns"]),
            ("events", s["last_seq"]),
            ("tokens", f"{s['input_tokens']} in / {s['output_tokens']} out"),
            ("cost", f"${s['cost_usd']:.6f}"), ("error", s["error"]),
            ("created", output.when(s["created_at"])),
            ("last activity", output.when(s["last_activity_at"])),
        ]
    )  # fmt: skip


@app.command("events")
def events(
    ctx: typer.Context,
    sid: str = SessionArg,
    after: int = typer.Option(0, "--after", min=0, help="Only events after this seq."),
    json_: bool = JsonOpt,
) -> None:
    """Print a session's recorded events (all of them after --after)."""
    state = output.use(ctx, json_)
    found: list[dict[str, Any]] = []
    while True:  # the events list pages by seq (`after`), not by cursor
        page = state.client.get(f"/v1/sessions/{sid}/events", after=after, limit=200)
        found += page["data"]
        if not page.get("next_cursor"):
            break
        after = int(page["next_cursor"])
    if state.json:
        output.emit_json({"data": found, "next_cursor": None})
        return
    output.table(
        ["SEQ", "TIME", "TYPE", "SUMMARY"],
        ([e["seq"], output.when(e["ts"]), e["type"], live.summarize(e)] for e in found),
        empty="no events",
    )


@app.command("tail")
def tail(
    ctx: typer.Context,
    sid: str = SessionArg,
    after: int = typer.Option(0, "--after", min=0, help="Start after this seq (0: everything)."),
    until_idle: bool = typer.Option(
        False, "--until-idle", help="Stop once no turn is running, instead of at Ctrl-C."
    ),
    json_: bool = JsonOpt,
) -> None:
    """Follow a session's events live (NDJSON with --json)."""
    state = output.use(ctx, json_)
    code = live.follow(state, sid, after=after, until_idle=until_idle, show_input=True)
    # Ctrl-C is how a plain tail ends: that is success, not an interruption.
    _exit(0 if code == 130 and not until_idle else code)


app.command("trace")(traces_cli.trace)


@app.command("cancel")
def cancel(ctx: typer.Context, sid: str = SessionArg, json_: bool = JsonOpt) -> None:
    """Cancel the running turn of a session."""
    state = output.use(ctx, json_)
    s = state.client.post(f"/v1/sessions/{sid}/cancel")
    if state.json:
        output.emit_json(s)
    else:
        output.done(f"Cancelling session {s['id']} (state {s['state']})")


@app.command("kill")
def kill(
    ctx: typer.Context,
    sid: str | None = typer.Argument(None, metavar="[SID]", help="One session; or use filters."),
    agent: str | None = typer.Option(None, "--agent", help="Every live session of this agent."),
    team: str | None = typer.Option(None, "--team", help="... of this team."),
    runtime: str | None = typer.Option(None, "--runtime", help="... on this runtime."),
    key: str | None = typer.Option(None, "--key", help="... started with this key."),
    reason: str | None = typer.Option(None, "--reason", help="Recorded with the kill."),
    json_: bool = JsonOpt,
) -> None:
    """Kill switch: cancel on the runtime and terminate one session or a fleet slice."""
    state = output.use(ctx, json_)
    filters = {"team_id": team, "runtime_id": runtime, "key_id": key}
    if agent:
        filters["agent_id"] = state.client.resolve_agent(agent)
    filters = {k: v for k, v in filters.items() if v}
    if (sid is None) == (not filters):
        raise typer.BadParameter(
            "give a session id, or one or more of --agent/--team/--runtime/--key"
        )
    if sid is not None:
        s = state.client.post(f"/v1/sessions/{sid}/kill", {"reason": reason})
        if state.json:
            output.emit_json(s)
        else:
            output.done(f"Killed session {s['id']} (state {s['state']})")
        return
    report = state.client.post("/v1/sessions/kill", {**filters, "reason": reason})
    if state.json:
        output.emit_json(report)
        return
    output.done(f"Killed {len(report['killed'])} session(s)")
    for session_id, error in report["failed"].items():
        output.note(f"failed to kill {session_id}: {error}")
    _exit(1 if report["failed"] else 0)


@app.command("approvals")
def approvals(
    ctx: typer.Context,
    sid: str = SessionArg,
    status: str | None = typer.Option(None, "--status", help="pending, resolved or cancelled."),
    json_: bool = JsonOpt,
) -> None:
    """List a session's approval requests."""
    state = output.use(ctx, json_)
    items = state.client.get(f"/v1/sessions/{sid}/approvals", status=status)
    if state.json:
        output.emit_json(items)
        return
    output.table(
        ["ID", "TOOL", "INPUT", "STATUS", "DECISION", "BY", "CREATED"],
        (
            [
                a["id"],
                a["name"],
                live.short(live.compact(a["input"] or {}), 60),
                a["status"],
                a["decision"],
                a["resolved_by"],
                output.when(a["created_at"]),
            ]
            for a in items
        ),
        empty="no approvals",
    )


def _resolve(ctx: typer.Context, sid: str, apr: str, body: dict[str, Any], as_json: bool) -> None:
    approvals_cli.resolve(ctx, f"/v1/sessions/{sid}/approvals/{apr}", body, as_json)


@app.command("approve")
def approve(
    ctx: typer.Context,
    sid: str = SessionArg,
    approval_id: str = ApprovalArg,
    always: bool = typer.Option(False, "--always", help="Allow this kind of call from now on."),
    json_: bool = JsonOpt,
) -> None:
    """Allow a pending tool call (once, or --always)."""
    decision = "allow_always" if always else "allow_once"
    _resolve(ctx, sid, approval_id, {"decision": decision}, json_)


@app.command("deny")
def deny(
    ctx: typer.Context,
    sid: str = SessionArg,
    approval_id: str = ApprovalArg,
    message: str | None = typer.Option(None, "--message", help="Tell the agent why."),
    json_: bool = JsonOpt,
) -> None:
    """Deny a pending tool call."""
    _resolve(ctx, sid, approval_id, {"decision": "deny", "message": message}, json_)


@app.command("answer")
def answer(
    ctx: typer.Context,
    sid: str = SessionArg,
    request_id: str = typer.Argument(..., metavar="REQUEST_ID", help="From input.requested."),
    text: str | None = typer.Argument(None, help="Your answer (a question or free text)."),
    result: list[str] = typer.Option(
        [], "--result", metavar="CALL_ID=OUTPUT", help="A client tool's result (repeatable)."
    ),
    error: bool = typer.Option(False, "--error", help="Mark the tool results as errors."),
    no_stream: bool = NoStreamOpt,
    json_: bool = JsonOpt,
) -> None:
    """Answer a turn that waits for you (input.requested), then follow the reply."""
    state = output.use(ctx, json_)
    if (text is None) == (not result):
        raise typer.BadParameter("give either TEXT or one or more --result CALL_ID=OUTPUT")
    body: dict[str, Any] = {"text": text}
    if result:
        pairs = [r.partition("=") for r in result]
        body = {
            "tool_results": [{"call_id": c, "output": o, "is_error": error} for c, _, o in pairs]
        }
    session = state.client.post(f"/v1/sessions/{sid}/inputs/{request_id}", body)
    if state.json:
        output.emit_json(session)
        return
    if no_stream:
        output.done(f"Answered {request_id}; session {sid} is {session['state']}")
        return
    _exit(live.follow(state, sid, after=session["last_seq"]))
