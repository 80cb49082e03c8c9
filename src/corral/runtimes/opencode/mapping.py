"""OpenCode native events -> normalized drafts. Pure: no I/O, no clock, never raises on odd input.

Native ids are derived from what OpenCode keeps stable (part ids, call ids, permission ids, message
ids) rather than from the frame's ``evt_`` id, so the same occurrence maps to the same id whether it
arrives live, is redelivered, or is rebuilt from ``GET /session/{id}/message`` history.
"""

from __future__ import annotations

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

REPLY_TO_DECISION = {
    "once": ApprovalDecision.ALLOW_ONCE,
    "always": ApprovalDecision.ALLOW_ALWAYS,
    "reject": ApprovalDecision.DENY,
}
DECISION_TO_REPLY = {
    ApprovalDecision.ALLOW_ONCE: "once",
    ApprovalDecision.ALLOW_SESSION: "always",
    ApprovalDecision.ALLOW_ALWAYS: "always",
    ApprovalDecision.DENY: "reject",
}
APPROVAL_CHOICES = [
    d.value
    for d in (ApprovalDecision.ALLOW_ONCE, ApprovalDecision.ALLOW_ALWAYS, ApprovalDecision.DENY)
]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def session_of(frame: dict[str, Any]) -> str | None:
    """The OpenCode session a bus frame belongs to, wherever this event type keeps it."""
    props = _dict(frame.get("properties"))
    for candidate in (
        props.get("sessionID"),
        _dict(props.get("part")).get("sessionID"),
        _dict(props.get("info")).get("sessionID"),
    ):
        if isinstance(candidate, str):
            return candidate
    info_id = _dict(props.get("info")).get("id")
    if str(frame.get("type", "")).startswith("session.") and isinstance(info_id, str):
        return info_id
    return None


def usage_draft(info: dict[str, Any]) -> EventDraft | None:
    tokens = _dict(info.get("tokens"))
    if not tokens and "cost" not in info:
        return None
    cache = _dict(tokens.get("cache"))
    cost = info.get("cost")
    data: dict[str, Any] = {
        "scope": "request",
        "cumulative": False,
        "message_id": info.get("id"),
        "model": "/".join(str(info[k]) for k in ("providerID", "modelID") if info.get(k)) or None,
        "input_tokens": int(tokens.get("input") or 0),
        "output_tokens": int(tokens.get("output") or 0),
        "reasoning_tokens": int(tokens.get("reasoning") or 0),
        "cache_read_tokens": int(cache.get("read") or 0),
        "cache_write_tokens": int(cache.get("write") or 0),
        "cost_source": "runtime",
    }
    if isinstance(cost, int | float):
        data["cost_usd"] = float(cost)
        data["cost_micros"] = usd_to_micros(float(cost))
    return EventDraft(EventType.USAGE, data, f"usage:{info.get('id')}", "message.updated")


@dataclass
class OpenCodeMapper:
    """Mapping state for one session: which messages are the user's echo, text offsets, the turn."""

    user_messages: set[str] = field(default_factory=set)
    part_kinds: dict[str, str] = field(default_factory=dict)
    text_offsets: dict[str, int] = field(default_factory=dict)
    tool_calls: set[str] = field(default_factory=set)
    turn_id: str | None = None
    turn_error: str | None = None
    turn_user_message: str | None = None
    frame_id: str | None = None

    def begin_turn(self, turn_id: str) -> None:
        self.turn_id = turn_id
        self.turn_error = None

    def map(self, event: NativeEvent) -> list[EventDraft]:
        handler = _HANDLERS.get(event.type)
        if handler is None:
            return []
        frame_id = event.payload.get("id")
        self.frame_id = frame_id if isinstance(frame_id, str) else None
        props = _dict(event.payload.get("properties"))
        return handler(self, props, event.type)

    # -- turn boundaries -------------------------------------------------------------------

    def _status(self, props: dict[str, Any], kind: str) -> list[EventDraft]:
        status = _dict(props.get("status"))
        if status.get("type") == "idle":
            return self._idle(props, kind)
        if status.get("type") == "retry":
            attempt = status.get("attempt")
            data = {
                "code": "upstream_retry",
                "message": str(status.get("message") or "runtime is retrying the model call"),
                "retryable": True,
                "fatal": False,
                "attempt": attempt,
            }
            return [EventDraft(EventType.ERROR, data, f"retry:{self.turn_id}:{attempt}", kind)]
        return []

    def finish_turn(self) -> list[EventDraft]:
        return self._idle({}, "corral.reconciled")

    def _idle(self, props: dict[str, Any], kind: str) -> list[EventDraft]:
        # OpenCode says "idle" twice on errors and aborts (and in two ways); the turn ends once.
        if self.turn_id is None:
            return []
        if self.turn_error == "MessageAbortedError":
            reason = StopReason.CANCELLED
        elif self.turn_error is not None:
            reason = StopReason.ERROR
        else:
            reason = StopReason.END_TURN
        data = {"turn_id": self.turn_id, "stop_reason": reason.value}
        draft = EventDraft(EventType.TURN_COMPLETED, data, turn_end_native_id(self.turn_id), kind)
        self.turn_id = None
        return [draft]

    def _error(self, props: dict[str, Any], kind: str) -> list[EventDraft]:
        error = _dict(props.get("error"))
        return self._error_from(error, kind)

    def _error_from(self, error: dict[str, Any], kind: str) -> list[EventDraft]:
        name = str(error.get("name") or "UnknownError")
        if self.turn_error is not None:
            return []
        self.turn_error = name
        data_part = _dict(error.get("data"))
        message = data_part.get("message") or error.get("message") or name
        data: dict[str, Any] = {
            "code": name,
            "message": str(message),
            "retryable": bool(data_part.get("isRetryable", False)),
            "fatal": False,
        }
        if isinstance(data_part.get("statusCode"), int):
            data["http_status"] = data_part["statusCode"]
        return [EventDraft(EventType.ERROR, data, f"error:{self.turn_id}", kind)]

    # -- messages and parts ----------------------------------------------------------------

    def _message(self, props: dict[str, Any], kind: str) -> list[EventDraft]:
        info = _dict(props.get("info"))
        if info.get("role") == "user":
            if isinstance(info.get("id"), str) and info["id"] not in self.user_messages:
                # A new user message starts the runtime's next turn: errors before it are old.
                self.user_messages.add(info["id"])
                self.turn_user_message = info["id"]
                self.turn_error = None
            return []
        drafts: list[EventDraft] = []
        parent = info.get("parentID")
        if _dict(info.get("error")) and (parent is None or parent == self.turn_user_message):
            drafts += self._error_from(_dict(info.get("error")), kind)
        if _dict(info.get("time")).get("completed") is not None:
            usage = usage_draft(info)
            if usage is not None:
                drafts.append(usage)
        return drafts

    def _part(self, props: dict[str, Any], kind: str) -> list[EventDraft]:
        part = _dict(props.get("part"))
        part_id, part_type = part.get("id"), part.get("type")
        if part.get("messageID") in self.user_messages or not isinstance(part_id, str):
            return []
        if isinstance(part_type, str):
            self.part_kinds[part_id] = part_type
        if part_type in ("text", "reasoning"):
            drafts: list[EventDraft] = []
            if isinstance(props.get("delta"), str) and props["delta"]:
                drafts += self._delta_text(part, props["delta"], kind)
            if _dict(part.get("time")).get("end") is not None and not part.get("synthetic"):
                drafts.append(text_completed(part, kind))
            return drafts
        if part_type == "tool":
            drafts = tool_drafts(part, kind)
            call_id = str(part.get("callID"))
            if drafts and drafts[0].type is EventType.TOOL_CALL:
                self.tool_calls.add(call_id)
            elif drafts and call_id not in self.tool_calls:
                # Only the final state was seen (a backfill from history, or a missed frame):
                # report the call too, so every result has its call before it.
                self.tool_calls.add(call_id)
                running = {**part, "state": {**_dict(part.get("state")), "status": "running"}}
                drafts = tool_drafts(running, kind) + drafts
            return drafts
        return []

    def _delta(self, props: dict[str, Any], kind: str) -> list[EventDraft]:
        if props.get("field") != "text" or not isinstance(props.get("delta"), str):
            return []
        if props.get("messageID") in self.user_messages:
            return []
        part = {"id": props.get("partID"), "messageID": props.get("messageID")}
        part["type"] = self.part_kinds.get(str(part["id"]), "text")
        return self._delta_text(part, props["delta"], kind, frame_id=self.frame_id)

    def _delta_text(
        self, part: dict[str, Any], text: str, kind: str, frame_id: str | None = None
    ) -> list[EventDraft]:
        part_id = str(part.get("id"))
        offset = self.text_offsets.get(part_id, 0)
        self.text_offsets[part_id] = offset + len(text)
        if frame_id:
            # The bus frame's own id: stable on redelivery, and unlike an offset it does not
            # depend on having seen the part from its start (a pump taking over mid-turn).
            native_id = f"delta:{part_id}:{frame_id}"
        else:
            native_id = f"delta:{part_id}:{offset}"
        data = {
            "message_id": part.get("messageID"),
            "part_id": part_id,
            "role": "assistant",
            "channel": "reasoning" if part.get("type") == "reasoning" else "text",
            "text": text,
        }
        return [EventDraft(EventType.MESSAGE_DELTA, data, native_id, kind)]

    # -- permissions -----------------------------------------------------------------------

    def _permission_asked(self, props: dict[str, Any], kind: str) -> list[EventDraft]:
        native_id = props.get("id")
        if not isinstance(native_id, str):
            return []
        tool = _dict(props.get("tool"))
        metadata = _dict(props.get("metadata"))
        data = {
            "native_approval_id": native_id,
            "call_id": tool.get("callID") or props.get("callID"),
            "name": props.get("permission") or props.get("type"),
            "input": metadata,
            "patterns": props.get("patterns")
            or ([props["pattern"]] if props.get("pattern") else []),
            "description": props.get("title") or metadata.get("command"),
            "choices": APPROVAL_CHOICES,
        }
        return [EventDraft(EventType.APPROVAL_REQUESTED, data, f"permission:{native_id}", kind)]

    def _permission_replied(self, props: dict[str, Any], kind: str) -> list[EventDraft]:
        native_id = props.get("requestID") or props.get("permissionID")
        reply = props.get("reply") or props.get("response")
        if not isinstance(native_id, str) or reply not in REPLY_TO_DECISION:
            return []
        data = {
            "native_approval_id": native_id,
            "decision": REPLY_TO_DECISION[str(reply)].value,
            "by": "runtime",
        }
        return [
            EventDraft(
                EventType.APPROVAL_RESOLVED, data, approval_resolved_native_id(native_id), kind
            )
        ]


def text_completed(part: dict[str, Any], kind: str) -> EventDraft:
    channel = "reasoning" if part.get("type") == "reasoning" else "text"
    data = {
        "message_id": part.get("messageID"),
        "part_id": part.get("id"),
        "role": "assistant",
        "channel": channel,
        "content": [{"type": "text", "text": str(part.get("text") or "")}],
    }
    return EventDraft(EventType.MESSAGE_COMPLETED, data, f"text:{part.get('id')}", kind)


def tool_drafts(part: dict[str, Any], kind: str) -> list[EventDraft]:
    state = _dict(part.get("state"))
    status, call_id, name = state.get("status"), part.get("callID"), part.get("tool")
    if status in ("pending", "running"):
        data = {
            "call_id": call_id,
            "name": name,
            "input": state.get("input") or None,
            "kind": "builtin",
            "status": status,
        }
        return [EventDraft(EventType.TOOL_CALL, data, f"tool:{call_id}:{status}", kind)]
    if status in ("completed", "error"):
        timing = _dict(state.get("time"))
        start, end = timing.get("start"), timing.get("end")
        is_error = status == "error"
        data = {
            "call_id": call_id,
            "name": name,
            "output": state.get("error") if is_error else state.get("output"),
            "is_error": is_error,
            "truncated": bool(_dict(state.get("metadata")).get("truncated", False)),
        }
        if isinstance(start, int | float) and isinstance(end, int | float):
            data["duration_ms"] = int(end - start)
        return [EventDraft(EventType.TOOL_RESULT, data, f"tool:{call_id}:done", kind)]
    return []


_HANDLERS = {
    "session.status": OpenCodeMapper._status,
    "session.idle": OpenCodeMapper._idle,
    "session.error": OpenCodeMapper._error,
    "message.updated": OpenCodeMapper._message,
    "message.part.updated": OpenCodeMapper._part,
    "message.part.delta": OpenCodeMapper._delta,
    "permission.asked": OpenCodeMapper._permission_asked,
    "permission.updated": OpenCodeMapper._permission_asked,
    "permission.replied": OpenCodeMapper._permission_replied,
}
