"""What must hold for one session after a crash and recovery, checked against the runtime's record.

Pure functions over plain JSON: Corral's event log (``GET /v1/sessions/{id}/events``), the session
(``GET /v1/sessions/{id}``), the runtime's own history (``GET /session/{id}/message`` on OpenCode:
``[{info, parts}]``), what the client sent, and what it saw on the SSE stream. Each finding is a
:class:`Finding`: an invariant name and a detail that stays the same when the same defect is seen
again, so a session checked after several kills reports it once.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Json = dict[str, Any]
Fail = Callable[[str, str], None]


@dataclass(frozen=True)
class Finding:
    invariant: str
    detail: str


@dataclass
class ClientInput:
    """One message a client sent (or tried to): the response it got, if any."""

    text: str
    idempotency_key: str
    status: int | None = None  # None: the request was cut (Corral died) or never connected
    turn_id: str | None = None
    retry_status: int | None = None  # the same request again after the restart, if retried
    retry_turn_id: str | None = None


@dataclass
class Observed:
    session: Json
    events: list[Json]
    history: list[Json]
    inputs: list[ClientInput] = field(default_factory=list)
    kill_times: list[float] = field(default_factory=list)  # epoch seconds of every SIGKILL
    seen_before_kill: dict[int, Json] = field(default_factory=dict)  # SSE frames by seq
    resumed: list[Json] | None = None  # SSE frames read after reconnecting with Last-Event-ID
    resumed_from: int = 0
    settled: bool = True  # structural checks only when the session never settled


def _ts(event: Json) -> float:
    return datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00")).timestamp()


def _brief(event: Json) -> str:
    data = event.get("data") or {}
    keys = ("turn_id", "stop_reason", "state", "part_id", "call_id", "status", "message_id")
    shown = {k: data[k] for k in keys if k in data}
    return f"#{event['seq']} {event['type']} {shown}"


_SHORT = {
    "turn.started": "start",
    "turn.completed": "end",
    "session.state": "state",
    "message.delta": "delta",
    "message.completed": "text",
    "tool.call": "call",
    "tool.result": "result",
    "approval.requested": "ask",
    "approval.resolved": "answer",
}


def story(events: list[Json], turn_id: str | None, kill_times: list[float]) -> str:
    """A turn's events in one line, ``KILL`` where Corral died between two of them.

    Runs of deltas collapse to ``delta x N``; states and stop reasons are shown in brackets.
    """
    mine = [e for e in events if e.get("turn_id") == turn_id or e["data"].get("turn_id") == turn_id]
    out: list[str] = []
    previous: Json | None = None
    for event in mine:
        if previous is not None and any(_ts(previous) <= k < _ts(event) for k in kill_times):
            out.append("KILL")
        name = _SHORT.get(str(event["type"]), str(event["type"]))
        data = event["data"]
        extra = (
            data.get("state") or data.get("stop_reason") or data.get("status") or data.get("code")
        )
        label = f"{name}({extra})" if extra else name
        if out and out[-1].startswith("delta") and name == "delta":
            count = int(out[-1].split("x")[1]) if "x" in out[-1] else 1
            out[-1] = f"delta x{count + 1}"
        else:
            out.append(label if name != "delta" else "delta x1")
        previous = event
    first = mine[0]["seq"] if mine else "?"
    return f"[from #{first}: {' '.join(out)}]"


def user_text(message: Json) -> str:
    parts = message.get("parts") or []
    return "".join(
        str(p.get("text") or "")
        for p in parts
        if p.get("type") == "text" and not p.get("synthetic")
    )


def _info(message: Json) -> Json:
    info = message.get("info")
    return info if isinstance(info, dict) else {}


def runtime_stop_reason(assistant: Iterable[Json]) -> str:
    """The stop reason the runtime's record implies for one turn (its assistant messages)."""
    errors = [str((_info(m).get("error") or {}).get("name")) for m in assistant]
    errors = [e for e in errors if e != "None"]
    if "MessageAbortedError" in errors:
        return "cancelled"
    return "error" if errors else "end_turn"


def check(obs: Observed) -> list[Finding]:
    found: list[Finding] = []

    def fail(invariant: str, detail: str) -> None:
        finding = Finding(invariant, detail)
        if finding not in found:
            found.append(finding)

    events = obs.events
    by_type: dict[str, list[Json]] = defaultdict(list)
    for event in events:
        by_type[event["type"]].append(event)

    _check_seq(obs, fail)
    _check_duplicates(by_type, fail)
    _check_sse(obs, fail)
    if not obs.settled:
        return found

    turns = _check_turns(obs, by_type, fail)
    _check_inputs(obs, by_type, fail)
    _check_state(obs, by_type, fail)
    _check_runtime_record(obs, by_type, turns, fail)
    _check_deltas(obs, by_type, fail)
    return found


def _check_seq(obs: Observed, fail: Fail) -> None:
    seqs = [int(e["seq"]) for e in obs.events]
    if seqs != list(range(1, len(seqs) + 1)):
        gaps = sorted(set(range(1, (max(seqs) if seqs else 0) + 1)) - set(seqs))
        dups = sorted(s for s, n in Counter(seqs).items() if n > 1)
        fail("seq.gap_free", f"seq is not 1..{len(seqs)}: missing {gaps[:10]} repeated {dups[:10]}")
    if int(obs.session["last_seq"]) != len(seqs):
        fail("seq.last_seq", f"session last_seq {obs.session['last_seq']} but {len(seqs)} events")


_IDENTITY = {
    "turn.started": ("turn_id",),
    "turn.completed": ("turn_id",),
    "message.completed": ("part_id",),
    "tool.call": ("call_id", "status"),
    "tool.result": ("call_id",),
    "usage": ("message_id",),
    "approval.requested": ("native_approval_id",),
    "approval.resolved": ("native_approval_id",),
    "session.created": ("native_session_id",),
}


def _check_duplicates(by_type: dict[str, list[Json]], fail: Fail) -> None:
    for kind, keys in _IDENTITY.items():
        groups: dict[tuple[Any, ...], list[Json]] = defaultdict(list)
        for event in by_type.get(kind, []):
            groups[tuple(event["data"].get(k) for k in keys)].append(event)
        for key, same in groups.items():
            if len(same) > 1:
                where = ", ".join(f"#{e['seq']}" for e in same)
                fail(
                    f"dup.{kind}",
                    f"{len(same)}x {kind} for {dict(zip(keys, key, strict=True))}: {where}",
                )
    # Errors carry no native identity in the payload; the same error twice in a turn is a repeat.
    errors = Counter(
        (e.get("turn_id"), e["data"].get("code"), e["data"].get("attempt"))
        for e in by_type.get("error", [])
    )
    for (turn_id, code, attempt), count in errors.items():
        if count > 1 and code != "upstream_retry":
            fail("dup.error", f"{count}x error {code} (attempt {attempt}) in {turn_id}")


def _check_turns(obs: Observed, by_type: dict[str, list[Json]], fail: Fail) -> dict[str, Json]:
    """Turns do not overlap and each started one completes once; returns turn.completed by id."""
    open_turn: Json | None = None
    completed: dict[str, Json] = {}
    for event in obs.events:
        data = event["data"]
        if event["type"] == "turn.started":
            if open_turn is not None:
                fail(
                    "turn.overlap",
                    f"{_brief(event)} while {open_turn['data']['turn_id']} was still open",
                )
            open_turn = event
        elif event["type"] == "turn.completed":
            tid = data.get("turn_id")
            if open_turn is None or open_turn["data"]["turn_id"] != tid:
                current = open_turn["data"]["turn_id"] if open_turn else None
                fail("turn.order", f"{_brief(event)} but the open turn was {current}")
            else:
                open_turn = None
            completed.setdefault(str(tid), event)
    for started in by_type.get("turn.started", []):
        if started["data"]["turn_id"] not in completed:
            tid = started["data"]["turn_id"]
            fail(
                "turn.unfinished",
                f"{_brief(started)} never completed {story(obs.events, tid, obs.kill_times)}",
            )
    return completed


def _check_inputs(obs: Observed, by_type: dict[str, list[Json]], fail: Fail) -> None:
    """Every accepted input reached the runtime exactly once; nothing else did."""
    logged = Counter(str(e["data"].get("text")) for e in by_type.get("turn.started", []))
    delivered = Counter(user_text(m) for m in obs.history if _info(m).get("role") == "user")
    turn_ids = {e["data"]["turn_id"] for e in by_type.get("turn.started", [])}
    for text in sorted(set(logged) | set(delivered)):
        n_log, n_rt = logged[text], delivered[text]
        short = text[:40]
        times_sent = sum(1 for i in obs.inputs if i.text == text) or 1
        if n_log > times_sent:
            fail(
                "input.accepted_twice",
                f"{n_log} turn.started for {short!r}, the client sent it {times_sent} time(s)",
            )
        if n_rt > n_log:
            fail(
                "input.delivered_twice" if n_log else "input.unlogged",
                f"runtime holds {n_rt} user message(s) {short!r}; Corral logged {n_log} turn(s)",
            )
        elif n_rt < n_log:
            client = next((i for i in obs.inputs if i.text == text), None)
            answer = "no client record" if client is None else f"client got {client.status}"
            if client is not None and client.retry_status is not None:
                answer += f", retry got {client.retry_status}"
            tid = next(
                (
                    e["data"]["turn_id"]
                    for e in by_type["turn.started"]
                    if e["data"]["text"] == text
                ),
                None,
            )
            fail(
                "input.lost",
                f"Corral logged {n_log} turn(s) for {short!r} ({answer}) but the runtime holds "
                f"{n_rt} {story(obs.events, tid, obs.kill_times)}",
            )
    for sent in obs.inputs:
        for status, turn_id in (
            (sent.status, sent.turn_id),
            (sent.retry_status, sent.retry_turn_id),
        ):
            if status == 202 and turn_id not in turn_ids:
                fail(
                    "input.acked_unlogged",
                    f"202 with {turn_id} for {sent.text[:40]!r}, no turn.started",
                )


def _check_state(obs: Observed, by_type: dict[str, list[Json]], fail: Fail) -> None:
    session = obs.session
    started = by_type.get("turn.started", [])
    done = by_type.get("turn.completed", [])
    if int(session["turns"]) != len(started):
        fail("state.turns", f"session.turns {session['turns']} but {len(started)} turn.started")
    if session.get("current_turn_id") is not None:
        fail("state.current_turn", f"settled with current_turn_id {session['current_turn_id']}")
    if done:
        reason = done[-1]["data"].get("stop_reason")
        want = "failed" if reason == "error" else "idle"
        if session["state"] != want or session.get("stop_reason") != reason:
            fail(
                "state.final",
                f"last turn.completed says {reason} but session is {session['state']} "
                f"(stop_reason {session.get('stop_reason')})",
            )
    states = by_type.get("session.state", [])
    previous: str | None = None
    for event in states:
        data = event["data"]
        if previous is not None and data.get("previous") != previous:
            fail("state.chain", f"{_brief(event)} previous={data.get('previous')} after {previous}")
        previous = data.get("state")
    if states and previous != session["state"]:
        fail(
            "state.log_vs_row",
            f"last session.state event says {previous}, row says {session['state']}",
        )


def _check_runtime_record(
    obs: Observed, by_type: dict[str, list[Json]], completed: dict[str, Json], fail: Fail
) -> None:
    history = obs.history
    # The n-th user message with a text is the n-th turn started with it (texts may repeat).
    turns_of_text: dict[str, list[str]] = defaultdict(list)
    for event in by_type.get("turn.started", []):
        turns_of_text[str(event["data"].get("text"))].append(event["data"]["turn_id"])
    user_turn: dict[str, str | None] = {}
    for message in history:
        info = _info(message)
        if info.get("role") == "user":
            queue = turns_of_text.get(user_text(message), [])
            user_turn[str(info.get("id"))] = (
                queue.pop(0) if len(queue) > 1 else (queue[0] if queue else None)
            )
    message_turn: dict[str, str | None] = {}
    assistant_of_user: dict[str, list[Json]] = defaultdict(list)
    text_parts: dict[str, Json] = {}
    tool_parts: dict[str, Json] = {}
    finished: dict[str, Json] = {}
    for message in history:
        info = _info(message)
        if info.get("role") != "assistant":
            continue
        mid = str(info.get("id"))
        message_turn[mid] = user_turn.get(str(info.get("parentID")))
        assistant_of_user[str(info.get("parentID"))].append(message)
        if (info.get("time") or {}).get("completed") is not None:
            finished[mid] = info
        for part in message.get("parts") or []:
            if part.get("type") in ("text", "reasoning") and (part.get("time") or {}).get("end"):
                if not part.get("synthetic"):
                    text_parts[str(part.get("id"))] = part
            elif part.get("type") == "tool" and (part.get("state") or {}).get("status") in (
                "completed",
                "error",
            ):
                tool_parts[str(part.get("callID"))] = part

    # Text: one message.completed per finished part, with the runtime's text.
    said = defaultdict(list)
    for event in by_type.get("message.completed", []):
        said[str(event["data"].get("part_id"))].append(event)
    for part_id, part in text_parts.items():
        got = said.get(part_id, [])
        if not got:
            fail(
                "text.missing",
                f"runtime part {part_id} ({str(part.get('text'))[:30]!r}) has no message.completed",
            )
            continue
        content = "".join(c.get("text", "") for c in got[0]["data"].get("content") or [])
        if content != part.get("text"):
            fail(
                "text.differs",
                f"part {part_id}: Corral {content[:40]!r} vs runtime {str(part.get('text'))[:40]!r}",
            )
    for part_id in said.keys() - text_parts.keys():
        fail("text.phantom", f"message.completed for part {part_id} the runtime does not hold")

    # Tools: a call before exactly one result, with the runtime's output.
    calls: dict[str, list[Json]] = defaultdict(list)
    for event in by_type.get("tool.call", []):
        calls[str(event["data"].get("call_id"))].append(event)
    results: dict[str, list[Json]] = defaultdict(list)
    for event in by_type.get("tool.result", []):
        results[str(event["data"].get("call_id"))].append(event)
    for call_id, part in tool_parts.items():
        state = part["state"]
        got = results.get(call_id, [])
        if not got:
            fail(
                "tool.result_missing",
                f"runtime call {call_id} ({state['status']}) has no tool.result",
            )
            continue
        first_call = min((int(e["seq"]) for e in calls.get(call_id, [])), default=None)
        if first_call is None or first_call > int(got[0]["seq"]):
            fail(
                "tool.call_missing",
                f"tool.result #{got[0]['seq']} for {call_id} without a tool.call before it",
            )
        output = state.get("error") if state["status"] == "error" else state.get("output")
        if got[0]["data"].get("output") != output or got[0]["data"].get("is_error") != (
            state["status"] == "error"
        ):
            fail(
                "tool.result_differs",
                f"{call_id}: Corral {got[0]['data'].get('output')!r} vs runtime {output!r}",
            )
    for call_id in (calls.keys() | results.keys()) - tool_parts.keys():
        if call_id in results:
            fail("tool.phantom", f"tool.result for call {call_id} the runtime never finished")

    # Usage: once per finished assistant message, with its tokens; the session's totals agree.
    usage: dict[str, list[Json]] = defaultdict(list)
    for event in by_type.get("usage", []):
        usage[str(event["data"].get("message_id"))].append(event)
    for mid, info in finished.items():
        got = usage.get(mid, [])
        if not got:
            fail("usage.missing", f"runtime message {mid} finished, no usage event")
            continue
        tokens = info.get("tokens") or {}
        mine = got[0]["data"]
        if (mine.get("input_tokens"), mine.get("output_tokens")) != (
            tokens.get("input"),
            tokens.get("output"),
        ):
            fail(
                "usage.differs",
                f"{mid}: Corral in/out {mine.get('input_tokens')}/{mine.get('output_tokens')} "
                f"vs runtime {tokens.get('input')}/{tokens.get('output')}",
            )
    for mid in usage.keys() - finished.keys():
        fail("usage.phantom", f"usage for message {mid} the runtime never finished")
    logged_in = sum(int(e["data"].get("input_tokens") or 0) for e in by_type.get("usage", []))
    logged_out = sum(int(e["data"].get("output_tokens") or 0) for e in by_type.get("usage", []))
    runtime_in = sum(int((i.get("tokens") or {}).get("input") or 0) for i in finished.values())
    runtime_out = sum(int((i.get("tokens") or {}).get("output") or 0) for i in finished.values())
    session = obs.session
    if (session["input_tokens"], session["output_tokens"]) != (logged_in, logged_out):
        fail(
            "usage.session_totals",
            f"session {session['input_tokens']}/{session['output_tokens']} vs log {logged_in}/{logged_out}",
        )
    if (logged_in, logged_out) != (runtime_in, runtime_out):
        fail(
            "usage.runtime_totals",
            f"log {logged_in}/{logged_out} vs runtime {runtime_in}/{runtime_out}",
        )

    # Each turn ends the way the runtime's record says, and its events carry its turn id.
    for message in history:
        info = _info(message)
        if info.get("role") != "user":
            continue
        turn_id = user_turn.get(str(info.get("id")))
        end = completed.get(str(turn_id)) if turn_id else None
        if end is None:
            continue
        want = runtime_stop_reason(assistant_of_user.get(str(info.get("id")), []))
        got_reason = end["data"].get("stop_reason")
        if got_reason != want:
            fail(
                "turn.stop_reason",
                f"{turn_id} ended {got_reason} in Corral, {want} in the runtime "
                f"{story(obs.events, turn_id, obs.kill_times)}",
            )
    part_message = {pid: str(p.get("messageID")) for pid, p in text_parts.items()}
    call_message = {cid: str(p.get("messageID")) for cid, p in tool_parts.items()}
    wrong: Counter[tuple[str, str | None, str]] = Counter()
    for event in obs.events:
        data = event["data"]
        of_message = (
            data.get("message_id")
            or part_message.get(str(data.get("part_id")))
            or call_message.get(str(data.get("call_id")))
        )
        if event["type"] in (
            "message.delta",
            "message.completed",
            "usage",
            "tool.call",
            "tool.result",
        ):
            owner = message_turn.get(str(of_message))
            if owner is not None and event.get("turn_id") != owner:
                wrong[(event["type"], event.get("turn_id"), owner)] += 1
    for (kind, got_turn, owner), count in wrong.items():
        fail("turn.attribution", f"{count}x {kind} logged under {got_turn}, belongs to {owner}")


def _check_deltas(obs: Observed, by_type: dict[str, list[Json]], fail: Fail) -> None:
    """Deltas of a part fit its final text in order; no gap opens unless Corral was down then."""
    finals = {
        str(p.get("id")): str(p.get("text") or "")
        for m in obs.history
        for p in m.get("parts") or []
        if p.get("type") in ("text", "reasoning")
    }
    per_part: dict[str, list[Json]] = defaultdict(list)
    for event in by_type.get("message.delta", []):
        per_part[str(event["data"].get("part_id"))].append(event)
    for part_id, deltas in per_part.items():
        final = finals.get(part_id)
        if final is None:
            fail("delta.phantom", f"deltas for part {part_id} the runtime does not hold")
            continue
        pos = 0
        previous: Json | None = None
        for event in deltas:
            text = str(event["data"].get("text"))
            at = final.find(text, pos)
            if at < 0:
                fail(
                    "delta.order",
                    f"part {part_id}: {_brief(event)} {text!r} is not next in the text (repeat or reorder)",
                )
                break
            if previous is not None and at > pos:
                t0, t1 = _ts(previous), _ts(event)
                if not any(t0 <= k <= t1 for k in obs.kill_times):
                    fail(
                        "delta.gap",
                        f"part {part_id}: {final[pos:at]!r} missing between #{previous['seq']} "
                        f"and #{event['seq']} with Corral up all along",
                    )
            pos, previous = at + len(text), event


def _check_sse(obs: Observed, fail: Fail) -> None:
    log = {int(e["seq"]): e for e in obs.events}

    def same(frame: Json, event: Json) -> bool:
        keys = ("type", "data", "turn_id")
        return all(frame.get(k) == event.get(k) for k in keys)

    for seq, frame in sorted(obs.seen_before_kill.items()):
        event = log.get(seq)
        if event is None:
            fail(
                "sse.seen_then_lost",
                f"client saw #{seq} {frame.get('type')} before the kill; gone after",
            )
        elif not same(frame, event):
            fail(
                "sse.seen_then_changed",
                f"client saw #{seq} as {frame.get('type')}, log now has {_brief(event)}",
            )
    if obs.resumed is None:
        return
    got = [int(f["seq"]) for f in obs.resumed]
    want = [s for s in sorted(log) if s > obs.resumed_from]
    if got != want:
        fail(
            "sse.resume",
            f"after Last-Event-ID {obs.resumed_from} got seqs {_span(got)}, log has {_span(want)}",
        )
    for frame in obs.resumed:
        event = log.get(int(frame["seq"]))
        if event is not None and not same(frame, event):
            fail(
                "sse.resume_differs",
                f"resumed #{frame['seq']} {frame.get('type')} vs log {_brief(event)}",
            )
            break


def _span(seqs: list[int]) -> str:
    if not seqs:
        return "[]"
    if seqs == list(range(seqs[0], seqs[-1] + 1)):
        return f"{seqs[0]}..{seqs[-1]}"
    return str(seqs[:12]) + ("..." if len(seqs) > 12 else "")
