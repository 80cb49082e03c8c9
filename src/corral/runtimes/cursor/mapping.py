"""Cursor run-stream events -> normalized drafts. Pure: no I/O, no clock, never raises.

A native event is one SSE frame of one run: ``NativeEvent(agent_id, <event name>, {"run_id",
"event_id", "data"})``. Native ids come from what Cursor keeps stable: the run id with the
frame's own SSE id for deltas, the tool ``callId`` for tool events, the run id for the run's
result, error and usage, so a frame redelivered after a resume, or replayed by ``history()``,
maps to the same id it had live.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corral.domain.events import EventDraft, EventType, StopReason, turn_end_native_id
from corral.runtimes.base import NativeEvent

__all__ = ["GAP", "STOP_REASONS", "CursorMapper", "native"]

#: Synthetic event from ``history()``: the run's stream expired (410), so its frames are lost.
GAP = "corral.cursor.gap"

STOP_REASONS = {
    "FINISHED": StopReason.END_TURN,
    "CANCELLED": StopReason.CANCELLED,
    "ERROR": StopReason.ERROR,
    "EXPIRED": StopReason.ERROR,
}


def native(agent_id: str, event: str, run_id: str, event_id: str | None, data: Any) -> NativeEvent:
    payload = {"run_id": run_id, "event_id": event_id, "data": data}
    return NativeEvent(agent_id, event, payload)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_error(data: dict[str, Any]) -> bool:
    # Cursor has no failure flag on tool results: ``{"error": ...}`` without ``success`` is one.
    if data.get("status") == "error":
        return True
    result = data.get("result")
    return isinstance(result, dict) and "error" in result and "success" not in result


@dataclass
class CursorMapper:
    turn_id: str | None = None
    turn_error: bool = False
    finished_runs: set[str] = field(default_factory=set)
    failed_runs: set[str] = field(default_factory=set)
    tool_calls: set[str] = field(default_factory=set)
    texts: dict[str, list[str]] = field(default_factory=dict)

    def begin_turn(self, turn_id: str) -> None:
        self.turn_id, self.turn_error = turn_id, False

    def finish_turn(self) -> list[EventDraft]:
        reason = StopReason.ERROR if self.turn_error else StopReason.END_TURN
        return self._end(reason, "corral.reconciled")

    def map(self, event: NativeEvent) -> list[EventDraft]:
        handler = _HANDLERS.get(event.type)
        payload = event.payload if isinstance(event.payload, dict) else {}
        run_id = payload.get("run_id")
        if handler is None or not isinstance(run_id, str):
            return []
        event_id = payload.get("event_id")
        data = _dict(payload.get("data"))
        return handler(self, run_id, event_id if isinstance(event_id, str) else None, data)

    def _end(self, reason: StopReason, kind: str) -> list[EventDraft]:
        if self.turn_id is None:
            return []
        data = {"turn_id": self.turn_id, "stop_reason": reason.value}
        draft = EventDraft(EventType.TURN_COMPLETED, data, turn_end_native_id(self.turn_id), kind)
        self.turn_id = None
        return [draft]

    def _delta(
        self, run_id: str, event_id: str | None, data: dict[str, Any], kind: str
    ) -> list[EventDraft]:
        text = data.get("text")
        if not isinstance(text, str) or not text:
            return []
        parts = self.texts.setdefault(f"{run_id}:{kind}", [])
        # Without a frame id (never seen from Cursor) the offset in the run is the next best key.
        key = event_id if event_id is not None else f"@{sum(len(p) for p in parts)}"
        parts.append(text)
        out = {
            "message_id": f"{run_id}:assistant",
            "role": "assistant",
            "channel": "reasoning" if kind == "thinking" else "text",
            "text": text,
        }
        return [EventDraft(EventType.MESSAGE_DELTA, out, f"delta:{run_id}:{key}", kind)]

    def _assistant(
        self, run_id: str, event_id: str | None, data: dict[str, Any]
    ) -> list[EventDraft]:
        return self._delta(run_id, event_id, data, "assistant")

    def _thinking(
        self, run_id: str, event_id: str | None, data: dict[str, Any]
    ) -> list[EventDraft]:
        return self._delta(run_id, event_id, data, "thinking")

    def _tool(self, run_id: str, event_id: str | None, data: dict[str, Any]) -> list[EventDraft]:
        call_id, name = data.get("callId"), data.get("name")
        if not isinstance(call_id, str) or not call_id:
            return []
        drafts: list[EventDraft] = []
        if call_id not in self.tool_calls:
            # Completion seen first (a resume, or history) still reports the call before it.
            self.tool_calls.add(call_id)
            call = {
                "call_id": call_id,
                "name": name,
                "input": data.get("args"),
                "kind": "mcp" if name == "mcp" else "builtin",
                "status": "running",
            }
            drafts.append(
                EventDraft(EventType.TOOL_CALL, call, f"tool:{call_id}:call", "tool_call")
            )
        if data.get("status") in ("completed", "error"):
            result = {
                "call_id": call_id,
                "name": name,
                "output": data.get("result"),
                "is_error": _is_error(data),
                "truncated": bool(_dict(data.get("truncated")).get("result", False)),
            }
            drafts.append(
                EventDraft(EventType.TOOL_RESULT, result, f"tool:{call_id}:done", "tool_call")
            )
        return drafts

    def _interaction(
        self, run_id: str, event_id: str | None, data: dict[str, Any]
    ) -> list[EventDraft]:
        # The raw stream repeats the simplified frames; only its end-of-turn usage is new.
        usage = _dict(data.get("usage"))
        if data.get("type") != "turn-ended" or not usage:
            return []
        out: dict[str, Any] = {
            "scope": "turn",
            "cumulative": False,
            "run_id": run_id,
            "input_tokens": int(usage.get("inputTokens") or 0),
            "output_tokens": int(usage.get("outputTokens") or 0),
            "cache_read_tokens": int(usage.get("cacheReadTokens") or 0),
            "cache_write_tokens": int(usage.get("cacheWriteTokens") or 0),
            "cost_source": "runtime",
        }
        if isinstance(usage.get("reasoningTokens"), int):
            out["reasoning_tokens"] = usage["reasoningTokens"]
        return [EventDraft(EventType.USAGE, out, f"usage:{run_id}", "interaction_update")]

    def _error(self, run_id: str, event_id: str | None, data: dict[str, Any]) -> list[EventDraft]:
        if run_id in self.failed_runs:
            return []
        self.failed_runs.add(run_id)
        self.turn_error = True
        out = {
            "code": str(data.get("code") or "cursor_error"),
            "message": str(data.get("message") or "Cursor reported an error"),
            "retryable": False,
            "fatal": False,
            "run_id": run_id,
        }
        return [EventDraft(EventType.ERROR, out, f"error:{run_id}", "error")]

    def _result(self, run_id: str, event_id: str | None, data: dict[str, Any]) -> list[EventDraft]:
        if run_id in self.finished_runs:
            return []  # a replay of an earlier run's end must not end the turn open now
        self.finished_runs.add(run_id)
        status = str(data.get("status") or "FINISHED")
        text = data.get("text")
        if not isinstance(text, str):
            text = "".join(self.texts.get(f"{run_id}:assistant", []))
        drafts: list[EventDraft] = []
        if text:
            message = {
                "message_id": f"{run_id}:assistant",
                "role": "assistant",
                "channel": "text",
                "content": [{"type": "text", "text": text}],
            }
            drafts.append(
                EventDraft(EventType.MESSAGE_COMPLETED, message, f"text:{run_id}", "result")
            )
        if status in ("ERROR", "EXPIRED") and run_id not in self.failed_runs:
            error = _dict(data.get("error"))
            drafts += self._error(
                run_id,
                None,
                {
                    "code": error.get("code") or f"run_{status.lower()}",
                    "message": error.get("message") or f"Cursor run ended {status}",
                },
            )
        return drafts + self._end(STOP_REASONS.get(status, StopReason.ERROR), "result")

    def _gap(self, run_id: str, event_id: str | None, data: dict[str, Any]) -> list[EventDraft]:
        out = {"reason": str(data.get("reason") or "stream_expired"), "run_id": run_id}
        return [EventDraft(EventType.STREAM_GAP, out, f"gap:{run_id}", GAP)]


_HANDLERS = {
    "assistant": CursorMapper._assistant,
    "thinking": CursorMapper._thinking,
    "tool_call": CursorMapper._tool,
    "interaction_update": CursorMapper._interaction,
    "error": CursorMapper._error,
    "result": CursorMapper._result,
    GAP: CursorMapper._gap,
}
