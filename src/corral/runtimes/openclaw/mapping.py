"""OpenClaw gateway events -> normalized drafts. Pure: no I/O, no clock, never raises on odd input.

Which native event carries what (observed on openclaw 2026.9.6, see tests/fixtures/openclaw):

* ``chat`` ``state: delta`` -> ``message.delta`` (``deltaText``; the gateway throttles, so one
  delta may hold several model chunks); ``final`` / ``aborted`` / ``error`` end the turn;
  ``status`` frames (startup phases) are ignored.
* ``agent`` ``stream: tool`` ``phase: start|result`` -> ``tool.call`` / ``tool.result`` (needs
  the ``tool-events`` client cap). Other agent streams duplicate chat or are UI detail.
* ``session.message`` (transcript rows, also what ``chat.history`` returns): assistant text ->
  ``message.completed``, assistant ``usage`` -> ``usage`` (tokens and USD cost), ``toolCall``
  items and ``toolResult`` rows -> the same tool drafts as the live agent stream.
* ``exec.approval.requested`` / ``.resolved`` -> ``approval.requested`` / ``.resolved``.

Native ids come from ids the gateway keeps: transcript message ids (``__openclaw.id``), tool
call ids, approval ids, and ``runId`` + the run's own ``seq`` for deltas. A transcript row
mapped live and the same row from ``chat.history`` produce the same id, so backfill after a
crash or a dropped connection dedupes.
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
from corral.domain.money import usd_to_micros
from corral.runtimes.base import NativeEvent

DECISION_TO_NATIVE = {
    ApprovalDecision.ALLOW_ONCE: "allow-once",
    ApprovalDecision.ALLOW_SESSION: "allow-always",
    ApprovalDecision.ALLOW_ALWAYS: "allow-always",
    ApprovalDecision.DENY: "deny",
}
NATIVE_TO_DECISION = {
    "allow-once": ApprovalDecision.ALLOW_ONCE,
    "allow-always": ApprovalDecision.ALLOW_ALWAYS,
    "deny": ApprovalDecision.DENY,
}
_HTTP_STATUS = re.compile(r"\bHTTP (\d{3})\b")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def session_of(event: str, payload: dict[str, Any]) -> str | None:
    """The session key an event belongs to; approvals keep it inside ``request``."""
    key = payload.get("sessionKey")
    if isinstance(key, str):
        return key
    if event.startswith("exec.approval."):
        return _str(_dict(payload.get("request")).get("sessionKey"))
    return None


def message_id(message: dict[str, Any]) -> str | None:
    return _str(_dict(message.get("__openclaw")).get("id"))


def content_text(content: Any) -> str:
    """Text of a transcript ``content``: a string or a list of ``{type: "text", text}``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text") or "")
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def choices_of(request: dict[str, Any]) -> list[str]:
    allowed = request.get("allowedDecisions")
    natives = allowed if isinstance(allowed, list) else ["allow-once", "allow-always", "deny"]
    return [NATIVE_TO_DECISION[n].value for n in natives if n in NATIVE_TO_DECISION]


def http_status_of(text: str) -> int | None:
    """OpenClaw reports provider failures as prose ("... HTTP 400 ..."); errorDetail's
    ``httpStatus`` is preferred when present."""
    match = _HTTP_STATUS.search(text)
    return int(match.group(1)) if match else None


@dataclass
class OpenClawMapper:
    """Mapping state for one session: the open turn, its runs, and what was already reported."""

    turn_id: str | None = None
    runs: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)
    error_reported: bool = False
    aborted: bool = False
    ended_runs: set[str] = field(default_factory=set)

    def begin_turn(self, turn_id: str) -> None:
        self.turn_id = turn_id
        self.error_reported = self.aborted = False

    def finish_turn(self) -> list[EventDraft]:
        """The turn ended while nobody listened: its stop reason is what the transcript showed
        (an abort row, a terminal error row), else a normal end."""
        if self.aborted:
            return self._end(StopReason.CANCELLED, "corral.reconciled")
        reason = StopReason.ERROR if self.error_reported else StopReason.END_TURN
        return self._end(reason, "corral.reconciled")

    def map(self, event: NativeEvent) -> list[EventDraft]:
        payload = event.payload if isinstance(event.payload, dict) else {}
        try:
            if event.type == "chat":
                return self._chat(payload)
            if event.type == "agent":
                return self._agent(payload)
            if event.type == "session.message":
                return self._message(_dict(payload.get("message")), event.type)
            if event.type == "exec.approval.requested":
                return self._approval_requested(payload, event.type)
            if event.type == "exec.approval.resolved":
                return self._approval_resolved(payload, event.type)
        except (TypeError, ValueError, KeyError, AttributeError):
            return []  # odd input never breaks a session's pump
        return []

    # -- turn end ----------------------------------------------------------------------------

    def _end(self, reason: StopReason, kind: str) -> list[EventDraft]:
        if self.turn_id is None:
            return []
        data = {"turn_id": self.turn_id, "stop_reason": reason.value}
        draft = EventDraft(EventType.TURN_COMPLETED, data, turn_end_native_id(self.turn_id), kind)
        self.turn_id = None
        return [draft]

    def _chat(self, payload: dict[str, Any]) -> list[EventDraft]:
        state, run_id = payload.get("state"), _str(payload.get("runId"))
        if run_id is None:
            return []
        if state == "delta":
            text = payload.get("deltaText")
            if payload.get("replace") or not isinstance(text, str) or not text:
                return []  # a replacement snapshot: message.completed carries the final text
            self.runs.add(run_id)
            data = {
                "message_id": run_id,
                "role": "assistant",
                "channel": "text",
                "text": text,
            }
            native_id = f"delta:{run_id}:{payload.get('seq')}"
            return [EventDraft(EventType.MESSAGE_DELTA, data, native_id, "chat")]
        if state not in ("final", "aborted", "error") or run_id in self.ended_runs:
            # The gateway sends a second, agent-less ``error`` frame for the same run.
            return []
        self.ended_runs.add(run_id)
        drafts: list[EventDraft] = []
        if state == "final":
            return self._end(StopReason.END_TURN, "chat")
        if state == "aborted":
            return self._end(StopReason.CANCELLED, "chat")
        if not self.error_reported and self.turn_id is not None:
            drafts.append(self._error_draft(payload, run_id))
        return drafts + self._end(StopReason.ERROR, "chat")

    def _error_draft(self, payload: dict[str, Any], run_id: str) -> EventDraft:
        self.error_reported = True
        message = str(payload.get("errorMessage") or "OpenClaw run failed")
        detail = _dict(payload.get("errorDetail"))
        data: dict[str, Any] = {
            "code": str(payload.get("errorKind") or "run_failed"),
            "message": message,
            "retryable": False,
            "fatal": False,
        }
        status = detail.get("httpStatus")
        status = status if isinstance(status, int) else http_status_of(message)
        if status is not None:
            data["http_status"] = status
        if detail:
            data["detail"] = detail
        return EventDraft(EventType.ERROR, data, f"error:{run_id}", "chat")

    # -- tools -------------------------------------------------------------------------------

    def _agent(self, payload: dict[str, Any]) -> list[EventDraft]:
        if payload.get("stream") != "tool":
            return []
        data = _dict(payload.get("data"))
        call_id, name = _str(data.get("toolCallId")), data.get("name")
        if call_id is None:
            return []
        if data.get("phase") == "start":
            return self._tool_call(call_id, name, data.get("args"), "agent")
        if data.get("phase") == "result":
            result = _dict(data.get("result"))
            output = content_text(result.get("content"))
            drafts = (
                self._tool_call(call_id, name, None, "agent") if call_id not in self.calls else []
            )
            return [*drafts, tool_result(call_id, name, output, bool(data.get("isError")), "agent")]
        return []

    def _tool_call(self, call_id: str, name: Any, args: Any, kind: str) -> list[EventDraft]:
        self.calls.add(call_id)
        data = {
            "call_id": call_id,
            "name": name,
            "input": args if isinstance(args, dict) else None,
            "kind": "builtin",
            "status": "running",
        }
        return [EventDraft(EventType.TOOL_CALL, data, f"tool:{call_id}:call", kind)]

    # -- transcript rows ---------------------------------------------------------------------

    def _message(self, message: dict[str, Any], kind: str) -> list[EventDraft]:
        role, mid = message.get("role"), message_id(message)
        if role == "toolResult":
            call_id = _str(message.get("toolCallId"))
            if call_id is None:
                return []
            name = message.get("toolName")
            drafts = self._tool_call(call_id, name, None, kind) if call_id not in self.calls else []
            output = content_text(message.get("content"))
            return [*drafts, tool_result(call_id, name, output, bool(message.get("isError")), kind)]
        if role != "assistant" or mid is None:
            return []
        drafts = []
        if message.get("openclawAbort"):
            self.aborted = True
        failed = message.get("stopReason") == "error"
        content = message.get("content")
        for item in content if isinstance(content, list) else []:
            if isinstance(item, dict) and item.get("type") == "toolCall" and _str(item.get("id")):
                drafts += self._tool_call(item["id"], item.get("name"), item.get("arguments"), kind)
        text = content_text(content)
        if text and not failed:  # a failed run's row holds the gateway's error notice
            data: dict[str, Any] = {
                "message_id": mid,
                "role": "assistant",
                "channel": "text",
                "content": [{"type": "text", "text": text}],
            }
            drafts.append(EventDraft(EventType.MESSAGE_COMPLETED, data, f"msg:{mid}", kind))
        usage = usage_draft(message, mid, kind)
        if usage is not None:
            drafts.append(usage)
        if failed and not self.error_reported and self.turn_id:
            # The terminal error row: what history shows of a failed run.
            self.error_reported = True
            data = {
                "code": "run_failed",
                "message": text or "OpenClaw run failed",
                "retryable": False,
                "fatal": False,
            }
            status = http_status_of(text)
            if status is not None:
                data["http_status"] = status
            run_id = _str(_dict(message.get("__openclaw")).get("runId")) or mid
            drafts.append(EventDraft(EventType.ERROR, data, f"error:{run_id}", kind))
        return drafts

    # -- approvals ---------------------------------------------------------------------------

    def _approval_requested(self, payload: dict[str, Any], kind: str) -> list[EventDraft]:
        approval_id = _str(payload.get("id"))
        if approval_id is None:
            return []
        request = _dict(payload.get("request"))
        command = request.get("command")
        data = {
            "native_approval_id": approval_id,
            "call_id": request.get("toolCallId"),
            "name": "exec",
            "input": {"command": command, "cwd": request.get("cwd"), "host": request.get("host")},
            "description": command,
            "choices": choices_of(request),
            "expires_at_ms": payload.get("expiresAtMs"),
        }
        return [EventDraft(EventType.APPROVAL_REQUESTED, data, f"approval:{approval_id}", kind)]

    def _approval_resolved(self, payload: dict[str, Any], kind: str) -> list[EventDraft]:
        approval_id, decision = _str(payload.get("id")), payload.get("decision")
        if approval_id is None or decision not in NATIVE_TO_DECISION:
            return []
        data = {
            "native_approval_id": approval_id,
            "decision": NATIVE_TO_DECISION[str(decision)].value,
            "by": "runtime",
        }
        native_id = approval_resolved_native_id(approval_id)
        return [EventDraft(EventType.APPROVAL_RESOLVED, data, native_id, kind)]


def tool_result(call_id: str, name: Any, output: str, is_error: bool, kind: str) -> EventDraft:
    data = {"call_id": call_id, "name": name, "output": output, "is_error": is_error}
    return EventDraft(EventType.TOOL_RESULT, data, f"tool:{call_id}:done", kind)


def usage_draft(message: dict[str, Any], mid: str, kind: str) -> EventDraft | None:
    usage = _dict(message.get("usage"))
    cost = _dict(usage.get("cost")).get("total")
    if not usage.get("totalTokens") and not cost:
        return None  # gateway-injected rows (an abort's partial text, an error notice)
    data: dict[str, Any] = {
        "scope": "request",
        "cumulative": False,
        "message_id": mid,
        "model": "/".join(str(message[k]) for k in ("provider", "model") if message.get(k)) or None,
        "input_tokens": int(usage.get("input") or 0),
        "output_tokens": int(usage.get("output") or 0),
        "cache_read_tokens": int(usage.get("cacheRead") or 0),
        "cache_write_tokens": int(usage.get("cacheWrite") or 0),
        "total_tokens": int(usage.get("totalTokens") or 0),
        "cost_source": "runtime",
    }
    if isinstance(cost, int | float):
        data["cost_usd"] = float(cost)
        data["cost_micros"] = usd_to_micros(float(cost))
    return EventDraft(EventType.USAGE, data, f"usage:{mid}", kind)
