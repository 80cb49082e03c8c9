"""Runaway guards: watch a running turn's events and say when it must stop, and why.

Pure: the caller feeds each recorded event and carries out the returned stop (cancelling the
turn on the runtime). Limits come from the effective per-session limits of the session's scopes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from corral.domain.events import EventType
from corral.governance.rules.limits import Effective


@dataclass(frozen=True, slots=True)
class Stop:
    stop_reason: str
    detail: str
    policy_id: str | None
    policy_version: int | None


@dataclass
class TurnWatch:
    """Per-turn tallies a guard needs; one per live turn."""

    session_tool_calls: int
    session_cost_micros: int
    started: float  # monotonic seconds
    turn_tool_calls: int = 0
    calls: dict[str, str] = field(default_factory=dict)  # call id -> fingerprint
    last_failure: str | None = None
    repeats: int = 0


def _fingerprint(*parts: Any) -> str:
    raw = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()


def _stop(limits: Effective, name: str, reason: str, detail: str) -> Stop:
    src = limits.sources.get(name)
    return Stop(reason, detail, src.ref.id if src else None, src.ref.version if src else None)


def observe(
    watch: TurnWatch, etype: str, data: dict[str, Any], limits: Effective, now: float
) -> Stop | None:
    """Account for one event; a ``Stop`` when the turn went over a limit or is looping."""
    if etype == EventType.TOOL_CALL:
        watch.turn_tool_calls += 1
        watch.session_tool_calls += 1
        call_id = str(data.get("call_id") or "")
        watch.calls[call_id] = _fingerprint(data.get("name"), data.get("input"))
        cap = limits.get("max_tool_calls_per_turn")
        if cap is not None and watch.turn_tool_calls > cap:
            detail = f"{watch.turn_tool_calls} tool calls in this turn (limit {cap:g})"
            return _stop(limits, "max_tool_calls_per_turn", "tool_call_limit", detail)
        cap = limits.get("max_tool_calls_per_session")
        if cap is not None and watch.session_tool_calls > cap:
            detail = f"{watch.session_tool_calls} tool calls in this session (limit {cap:g})"
            return _stop(limits, "max_tool_calls_per_session", "tool_call_limit", detail)
    elif etype == EventType.TOOL_RESULT and data.get("is_error"):
        call = watch.calls.get(str(data.get("call_id") or ""), "")
        if stop := _repeat(watch, limits, _fingerprint("tool", call, data.get("output"))):
            return stop
    elif etype == EventType.ERROR:
        if stop := _repeat(
            watch, limits, _fingerprint("error", data.get("code"), data.get("message"))
        ):
            return stop
    elif etype == EventType.USAGE:
        watch.session_cost_micros += int(data.get("cost_micros") or 0)
        cap_micros = limits.micros("max_session_cost_usd")
        if cap_micros is not None and watch.session_cost_micros > cap_micros:
            return _stop(limits, "max_session_cost_usd", "cost_limit",
                         f"session cost over ${cap_micros / 1e6:.2f}")  # fmt: skip
    cap = limits.get("max_turn_seconds")
    if cap is not None and now - watch.started > cap:
        return _stop(limits, "max_turn_seconds", "time_limit", f"turn ran over {cap:g} s")
    return None


def _repeat(watch: TurnWatch, limits: Effective, fingerprint: str) -> Stop | None:
    if fingerprint == watch.last_failure:
        watch.repeats += 1
    else:
        watch.last_failure, watch.repeats = fingerprint, 1
    cap = limits.get("loop_guard_repeats")
    if cap is not None and cap > 0 and watch.repeats >= cap:
        return _stop(limits, "loop_guard_repeats", "loop_detected",
                     f"the same failure repeated {watch.repeats} times")  # fmt: skip
    return None
