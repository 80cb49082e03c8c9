"""Hermes run events -> normalized drafts. Pure: no I/O, no clock, never raises on odd input.

Hermes 0.19.0 gives no id to tool calls or approvals and no sequence number to events: the run
id is the only stable id. Native ids are therefore the run id plus an ordinal that Hermes itself
defines by order within that single-consumer run stream (the n-th ``tool.started`` or
``approval.request`` of the run); the live path is the only one that ever sees those, so no other
path can count differently. What a reconciliation can rebuild (the run's outcome, from
``GET /v1/runs/{id}``, or the stored session messages when Hermes forgot the run) is keyed by the
run id alone, or by Corral's turn id when the run id itself was lost, so live and reconciled
copies dedupe. Approval ids use Hermes' ``request_id`` when a newer build sends one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from corral.domain.events import (
    ApprovalDecision,
    EventDraft,
    EventType,
    StopReason,
    approval_resolved_native_id,
    turn_end_native_id,
)
from corral.runtimes.base import NativeEvent

#: Synthetic native event: events of a run were lost (its stream broke, or nobody listened).
STREAM_GAP_EVENT = "corral.stream_gap"

CHOICE_TO_DECISION = {
    "once": ApprovalDecision.ALLOW_ONCE,
    "session": ApprovalDecision.ALLOW_SESSION,
    "always": ApprovalDecision.ALLOW_ALWAYS,
    "deny": ApprovalDecision.DENY,
}
DECISION_TO_CHOICE = {decision: choice for choice, decision in CHOICE_TO_DECISION.items()}
#: What 0.19.0 offers when an approval.request comes without ``choices`` (a reconciled one).
DEFAULT_CHOICES = ["once", "session", "always", "deny"]
_HTTP_STATUS = re.compile(r"\bHTTP (\d{3})\b")


def approval_native_id(run_id: str, key: str) -> str:
    """``<run id>/<request id or ordinal>``: the adapter reads the run back out of it."""
    return f"{run_id}/{key}"


def split_approval_id(native_id: str) -> tuple[str, str | None]:
    """(run id, Hermes request id or None when the key is our ordinal)."""
    run_id, _, key = native_id.partition("/")
    return run_id, (None if key.isdigit() or not key else key)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass
class _Run:
    turn_id: str | None
    text_offset: int = 0
    tools: int = 0
    open_calls: list[tuple[str, str]] = field(default_factory=list)  # (call id, tool name)
    approvals: int = 0
    pending_approvals: list[str] = field(default_factory=list)
    approval_calls: dict[str, str | None] = field(default_factory=dict)  # approval -> call id
    finished: bool = False


@dataclass
class HermesMapper:
    """Mapping state of one session: which run serves the open turn, per-run ordinals."""

    turn_id: str | None = None
    runs: dict[str, _Run] = field(default_factory=dict)

    def begin_turn(self, turn_id: str) -> None:
        self.turn_id = turn_id

    def finish_turn(self) -> list[EventDraft]:
        # Reached only when the runtime is idle but no terminal event was mapped: the outcome
        # is unknown, so say the turn ended rather than guess a failure.
        return self._end(StopReason.END_TURN, "corral.reconciled")

    def map(self, event: NativeEvent) -> list[EventDraft]:
        payload = event.payload if isinstance(event.payload, dict) else {}
        if event.type == STREAM_GAP_EVENT:
            return self._gap(payload, event)
        run_id = _str(payload.get("run_id"))
        run = self._run(run_id)
        if run is None or run.finished:
            # Late copies of a finished run (a reconciliation racing the live stream) were
            # already mapped, under the same ids.
            return []
        handler = _HANDLERS.get(event.type)
        if handler is None:
            return []
        try:
            return handler(self, run_id or "", run, payload, event.type)
        except (TypeError, ValueError, AttributeError):
            return []

    # -- runs and turns --------------------------------------------------------------------

    def _run(self, run_id: str | None) -> _Run | None:
        """The run's state; the first run seen while a turn is open serves that turn."""
        if run_id is None:
            # Outcome rebuilt from stored messages after Hermes forgot the run: it can only
            # belong to the open turn.
            return _Run(self.turn_id) if self.turn_id is not None else None
        run = self.runs.get(run_id)
        if run is None:
            bound = {r.turn_id for r in self.runs.values() if not r.finished}
            turn = self.turn_id if self.turn_id not in bound else None
            run = self.runs[run_id] = _Run(turn)
        return run

    def _key(self, run_id: str, run: _Run) -> str:
        return run_id or f"turn:{run.turn_id}"

    def _end(self, reason: StopReason, kind: str, run: _Run | None = None) -> list[EventDraft]:
        drafts: list[EventDraft] = []
        if run is not None:
            run.finished = True
            drafts += _unanswered(run, None, kind)
        turn_id = run.turn_id if run is not None else self.turn_id
        if turn_id is None:
            return drafts
        if turn_id == self.turn_id:
            self.turn_id = None
        data = {"turn_id": turn_id, "stop_reason": reason.value}
        end = EventDraft(EventType.TURN_COMPLETED, data, turn_end_native_id(turn_id), kind)
        return [*drafts, end]

    def _gap(self, payload: dict[str, Any], event: NativeEvent) -> list[EventDraft]:
        run_id = _str(payload.get("run_id"))
        key = run_id or (f"turn:{self.turn_id}" if self.turn_id else None)
        if key is None:
            return []
        data = {
            "reason": str(payload.get("reason") or "Hermes run stream was interrupted"),
            "native_session_id": event.native_session_id,
            "run_id": run_id,
        }
        return [EventDraft(EventType.STREAM_GAP, data, f"gap:{key}", event.type)]

    # -- text --------------------------------------------------------------------------------

    def _delta(self, run_id: str, run: _Run, p: dict[str, Any], kind: str) -> list[EventDraft]:
        text = p.get("delta")
        if not isinstance(text, str) or not text:
            return []
        offset, run.text_offset = run.text_offset, run.text_offset + len(text)
        data = {"message_id": run_id, "role": "assistant", "channel": "text", "text": text}
        return [EventDraft(EventType.MESSAGE_DELTA, data, f"delta:{run_id}:{offset}", kind)]

    # -- tools -------------------------------------------------------------------------------

    def _tool_started(
        self, run_id: str, run: _Run, p: dict[str, Any], kind: str
    ) -> list[EventDraft]:
        run.tools += 1
        name = str(p.get("tool") or "unknown")
        call_id = f"{run_id}:tool:{run.tools}"
        run.open_calls.append((call_id, name))
        preview = p.get("preview")
        data = {
            "call_id": call_id,
            "name": name,
            # Hermes sends a one-line preview, not the arguments.
            "input": {"preview": preview} if isinstance(preview, str) else None,
            "kind": "builtin",
            "status": "running",
        }
        return [EventDraft(EventType.TOOL_CALL, data, f"tool:{call_id}:running", kind)]

    def _tool_completed(
        self, run_id: str, run: _Run, p: dict[str, Any], kind: str
    ) -> list[EventDraft]:
        name = str(p.get("tool") or "unknown")
        # No call id: pair with the oldest open call of that tool (Hermes reports in order).
        match = next((c for c in run.open_calls if c[1] == name), None)
        if match is None:
            return []
        run.open_calls.remove(match)
        drafts = _unanswered(run, match[0], kind)
        data: dict[str, Any] = {
            "call_id": match[0],
            "name": name,
            "output": None,  # Hermes reports no tool output on the run stream
            "is_error": bool(p.get("error")),
        }
        if isinstance(p.get("duration"), int | float):
            data["duration_ms"] = int(float(p["duration"]) * 1000)
        return [*drafts, EventDraft(EventType.TOOL_RESULT, data, f"tool:{match[0]}:done", kind)]

    # -- approvals ---------------------------------------------------------------------------

    def _approval_request(
        self, run_id: str, run: _Run, p: dict[str, Any], kind: str
    ) -> list[EventDraft]:
        if not run_id:
            return []
        request_id = _str(p.get("request_id"))
        if p.get("synthetic") and run.pending_approvals and request_id is None:
            return []  # a reconciliation re-reporting the approval already waiting
        if request_id is None:
            run.approvals += 1
        native_id = approval_native_id(run_id, request_id or str(run.approvals))
        if native_id in run.pending_approvals:
            return []
        run.pending_approvals.append(native_id)
        call = run.open_calls[-1] if run.open_calls else None
        run.approval_calls[native_id] = call[0] if call else None
        raw = p.get("choices")
        offered: list[Any] = raw if isinstance(raw, list) else DEFAULT_CHOICES
        data = {
            "native_approval_id": native_id,
            "call_id": call[0] if call else None,
            "name": call[1] if call else "terminal",
            "input": {
                "command": p.get("command"),
                "pattern_keys": p.get("pattern_keys")
                or ([p["pattern_key"]] if p.get("pattern_key") else []),
            },
            "description": p.get("description"),
            "choices": [CHOICE_TO_DECISION[c].value for c in offered if c in CHOICE_TO_DECISION],
        }
        return [EventDraft(EventType.APPROVAL_REQUESTED, data, f"approval:{native_id}", kind)]

    def _approval_responded(
        self, run_id: str, run: _Run, p: dict[str, Any], kind: str
    ) -> list[EventDraft]:
        choice = p.get("choice")
        if choice not in CHOICE_TO_DECISION or not run.pending_approvals:
            return []
        request_id = _str(p.get("request_id"))
        wanted = approval_native_id(run_id, request_id) if request_id else None
        # 0.19.0 resolves the oldest pending request of the run (FIFO), and says how many.
        native_id = wanted if wanted in run.pending_approvals else run.pending_approvals[0]
        run.pending_approvals.remove(native_id)
        data = {
            "native_approval_id": native_id,
            "decision": CHOICE_TO_DECISION[str(choice)].value,
            "by": "runtime",
        }
        return [
            EventDraft(
                EventType.APPROVAL_RESOLVED, data, approval_resolved_native_id(native_id), kind
            )
        ]

    # -- run outcome -------------------------------------------------------------------------

    def _completed(self, run_id: str, run: _Run, p: dict[str, Any], kind: str) -> list[EventDraft]:
        key = self._key(run_id, run)
        drafts: list[EventDraft] = []
        output = p.get("output")
        if isinstance(output, str):
            data: dict[str, Any] = {
                "message_id": run_id or None,
                "role": "assistant",
                "channel": "text",
                "content": [{"type": "text", "text": output}],
            }
            drafts.append(EventDraft(EventType.MESSAGE_COMPLETED, data, f"message:{key}", kind))
        usage = p.get("usage")
        if isinstance(usage, dict):
            data = {
                # A new agent serves each run, so the counts are this run's, not the session's.
                "scope": "turn",
                "cumulative": False,
                "input_tokens": int(usage.get("input_tokens") or 0),
                "output_tokens": int(usage.get("output_tokens") or 0),
                "total_tokens": int(usage.get("total_tokens") or 0),
                "cost_source": "runtime",
            }
            drafts.append(EventDraft(EventType.USAGE, data, f"usage:{key}", kind))
        return drafts + self._end(StopReason.END_TURN, kind, run)

    def _failed(self, run_id: str, run: _Run, p: dict[str, Any], kind: str) -> list[EventDraft]:
        message = str(p.get("error") or "Hermes run failed")
        data: dict[str, Any] = {
            "code": "run_failed",
            "message": message,
            "retryable": False,
            "fatal": False,
        }
        status = _HTTP_STATUS.search(message)
        if status:
            data["http_status"] = int(status.group(1))
        key = self._key(run_id, run)
        error = EventDraft(EventType.ERROR, data, f"error:{key}", kind)
        return [error, *self._end(StopReason.ERROR, kind, run)]

    def _cancelled(self, run_id: str, run: _Run, p: dict[str, Any], kind: str) -> list[EventDraft]:
        return self._end(StopReason.CANCELLED, kind, run)


def _unanswered(run: _Run, call_id: str | None, kind: str) -> list[EventDraft]:
    """Approvals nobody answered whose command is over (``call_id``) or whose run ended (None).

    Hermes refuses the command when its approval times out or the run is stopped, and says so
    only through the tool's error: report those approvals resolved, as denied by the runtime.
    """
    drafts: list[EventDraft] = []
    for native_id in list(run.pending_approvals):
        if call_id is not None and run.approval_calls.get(native_id) not in (call_id, None):
            continue
        run.pending_approvals.remove(native_id)
        data = {
            "native_approval_id": native_id,
            "decision": ApprovalDecision.DENY.value,
            "by": "runtime",
            "message": "not answered before Hermes gave up on the command (timeout or stop)",
        }
        drafts.append(
            EventDraft(
                EventType.APPROVAL_RESOLVED, data, approval_resolved_native_id(native_id), kind
            )
        )
    return drafts


_HANDLERS = {
    "message.delta": HermesMapper._delta,
    "tool.started": HermesMapper._tool_started,
    "tool.completed": HermesMapper._tool_completed,
    "approval.request": HermesMapper._approval_request,
    "approval.responded": HermesMapper._approval_responded,
    "run.completed": HermesMapper._completed,
    "run.failed": HermesMapper._failed,
    "run.cancelled": HermesMapper._cancelled,
}
