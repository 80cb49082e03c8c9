"""Claude Managed Agents events -> normalized drafts. Pure: no I/O, no clock, never raises.

Native ids come from the service's own event ids (``sevt_…``), which are the same on the live
stream and in ``GET /v1/sessions/{id}/events``; tool calls are keyed by the ``agent.tool_use``
event id that results and confirmations refer to. The stream shows client events twice (queued,
then processed) and both copies map to the same ids, so the repeat is deduped.

Turn boundaries: ``session.status_idle`` with ``requires_action`` keeps the turn open (approval or
client tool pending); ``end_turn`` ends it (``cancelled`` when a ``user.interrupt`` was seen in the
turn), ``retries_exhausted`` ends it as ``error``. An idle only ends a turn once the turn's own
``user.message`` was seen, so a stale idle from the previous turn (a backfill racing the send)
cannot close the new one.
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

DECISION_TO_RESULT = {
    ApprovalDecision.ALLOW_ONCE: "allow",
    ApprovalDecision.ALLOW_SESSION: "allow",
    ApprovalDecision.ALLOW_ALWAYS: "allow",
    ApprovalDecision.DENY: "deny",
}
APPROVAL_CHOICES = [ApprovalDecision.ALLOW_ONCE.value, ApprovalDecision.DENY.value]
_STOP_REASONS = {
    "end_turn": StopReason.END_TURN,
    "retries_exhausted": StopReason.ERROR,
    "budget_reached": StopReason.BUDGET_REACHED,
    "refusal": StopReason.END_TURN,
}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def content_text(content: Any) -> str:
    """The text of a content-block list (text and search results; images are skipped)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "".join(str(b.get("text") or "") for b in content if isinstance(b, dict))


@dataclass(frozen=True)
class Price:
    """USD per million tokens, from the runtime's config; the API reports tokens per request
    but cost only as a cumulative session total in whole cents."""

    input: float
    output: float
    cache_read: float = 0.0
    cache_write: float = 0.0


@dataclass
class ClaudeAgentsMapper:
    price: Price | None = None
    turn_id: str | None = None
    turn_input_seen: bool = False
    cancelled: bool = False
    inputs_seen: set[str] = field(default_factory=set)
    inputs_before_turn: frozenset[str] = frozenset()
    delta_offsets: dict[str, int] = field(default_factory=dict)
    custom_calls: dict[str, dict[str, Any]] = field(default_factory=dict)

    def begin_turn(self, turn_id: str) -> None:
        self.turn_id = turn_id
        self.turn_input_seen = False
        self.cancelled = False
        self.inputs_before_turn = frozenset(self.inputs_seen)

    def finish_turn(self) -> list[EventDraft]:
        return self._end(StopReason.END_TURN, "corral.reconciled", None)

    def map(self, event: NativeEvent) -> list[EventDraft]:
        handler = _HANDLERS.get(event.type)
        if handler is None:
            return []
        payload = event.payload if isinstance(event.payload, dict) else {}
        event_id = payload.get("id")
        return handler(self, payload, str(event_id) if event_id is not None else "", event.type)

    # -- turn boundaries ---------------------------------------------------------------------
    def _user_message(self, ev: dict[str, Any], eid: str, kind: str) -> list[EventDraft]:
        if eid and eid not in self.inputs_seen:
            self.inputs_seen.add(eid)
            if eid not in self.inputs_before_turn and self.turn_id is not None:
                self.turn_input_seen = True
        return []

    def _interrupt(self, ev: dict[str, Any], eid: str, kind: str) -> list[EventDraft]:
        if self.turn_id is not None:
            self.cancelled = True
        return []

    def _idle(self, ev: dict[str, Any], eid: str, kind: str) -> list[EventDraft]:
        stop = _dict(ev.get("stop_reason"))
        reason = str(stop.get("type") or "end_turn")
        if reason == "requires_action":
            ids = stop.get("event_ids") or _dict(stop.get("requires_action")).get("event_ids")
            return self._input_requested(eid, [str(i) for i in ids or []], kind)
        if not self.turn_input_seen:
            return []  # an idle from before this turn's input (backfill racing the send)
        normalized = _STOP_REASONS.get(reason, StopReason.END_TURN)
        return self._end(normalized, kind, reason)

    def _end(self, reason: StopReason, kind: str, native: str | None) -> list[EventDraft]:
        if self.turn_id is None:
            return []
        if self.cancelled and reason is StopReason.END_TURN:
            reason = StopReason.CANCELLED
        data: dict[str, Any] = {"turn_id": self.turn_id, "stop_reason": reason.value}
        if native and native != reason.value:
            data["native_stop_reason"] = native
        draft = EventDraft(EventType.TURN_COMPLETED, data, turn_end_native_id(self.turn_id), kind)
        self.turn_id = None
        self.turn_input_seen = False
        return [draft]

    def _terminated(self, ev: dict[str, Any], eid: str, kind: str) -> list[EventDraft]:
        data = {
            "code": "session_terminated" if kind != "session.deleted" else "session_deleted",
            "message": "the runtime ended the session",
            "retryable": False,
            "fatal": True,
        }
        drafts = [EventDraft(EventType.ERROR, data, f"error:{eid or kind}", kind)]
        return drafts + self._end(StopReason.ERROR, kind, kind)

    def _error(self, ev: dict[str, Any], eid: str, kind: str) -> list[EventDraft]:
        error = _dict(ev.get("error"))
        retry = str(_dict(error.get("retry_status")).get("type") or "exhausted")
        data = {
            "code": str(error.get("type") or "unknown_error"),
            "message": str(error.get("message") or "the runtime reported an error"),
            "retryable": retry == "retrying",
            "fatal": retry == "terminal",
            "retry_status": retry,
        }
        return [EventDraft(EventType.ERROR, data, f"error:{eid}", kind)]

    # -- content -----------------------------------------------------------------------------
    def _message(self, ev: dict[str, Any], eid: str, kind: str) -> list[EventDraft]:
        blocks = [
            {"type": "text", "text": str(b.get("text") or "")}
            for b in ev.get("content") or []
            if isinstance(b, dict) and b.get("type") == "text"
        ]
        data = {"message_id": eid, "role": "assistant", "channel": "text", "content": blocks}
        return [EventDraft(EventType.MESSAGE_COMPLETED, data, f"message:{eid}", kind)]

    def _delta(self, ev: dict[str, Any], eid: str, kind: str) -> list[EventDraft]:
        delta = _dict(ev.get("delta"))
        text = _dict(delta.get("content")).get("text")
        message_id = ev.get("event_id")
        if delta.get("type") != "content_delta" or not isinstance(text, str) or not text:
            return []
        if not isinstance(message_id, str):
            return []
        # Deltas carry no id of their own and are never in the history; the text offset within
        # the previewed message is stable for the one stream that delivers them.
        offset = self.delta_offsets.get(message_id, 0)
        self.delta_offsets[message_id] = offset + len(text)
        data = {"message_id": message_id, "role": "assistant", "channel": "text", "text": text}
        return [EventDraft(EventType.MESSAGE_DELTA, data, f"delta:{message_id}:{offset}", kind)]

    def _tool_use(self, ev: dict[str, Any], eid: str, kind: str) -> list[EventDraft]:
        ask = ev.get("evaluated_permission") == "ask"
        data: dict[str, Any] = {
            "call_id": eid,
            "name": ev.get("name"),
            "input": _dict(ev.get("input")),
            "kind": "mcp" if kind == "agent.mcp_tool_use" else "builtin",
            "status": "pending" if ask else "running",
        }
        if kind == "agent.mcp_tool_use":
            data["server"] = ev.get("mcp_server_name")
        drafts = [EventDraft(EventType.TOOL_CALL, data, f"tool:{eid}:call", kind)]
        if ask:
            approval = {
                "native_approval_id": eid,
                "call_id": eid,
                "name": ev.get("name"),
                "input": _dict(ev.get("input")),
                "choices": APPROVAL_CHOICES,
            }
            drafts.append(
                EventDraft(EventType.APPROVAL_REQUESTED, approval, f"approval:{eid}", kind)
            )
        return drafts

    def _custom_tool_use(self, ev: dict[str, Any], eid: str, kind: str) -> list[EventDraft]:
        call = {"call_id": eid, "name": ev.get("name"), "input": _dict(ev.get("input"))}
        self.custom_calls[eid] = call
        data = {**call, "kind": "custom_client", "status": "pending"}
        return [EventDraft(EventType.TOOL_CALL, data, f"tool:{eid}:call", kind)]

    def _input_requested(self, eid: str, ids: list[str], kind: str) -> list[EventDraft]:
        calls = [self.custom_calls[i] for i in ids if i in self.custom_calls]
        if not calls or self.turn_id is None:
            return []  # only approvals block: approval.requested already says so
        data = {
            "request_id": eid,
            "kind": "client_tool",
            "call_ids": [c["call_id"] for c in calls],
            "tools": calls,
        }
        return [EventDraft(EventType.INPUT_REQUESTED, data, f"input:{eid}", kind)]

    def _tool_result(self, ev: dict[str, Any], eid: str, kind: str) -> list[EventDraft]:
        call_id = ev.get("tool_use_id") or ev.get("mcp_tool_use_id") or ev.get("custom_tool_use_id")
        if not isinstance(call_id, str):
            return []
        data = {
            "call_id": call_id,
            "output": content_text(ev.get("content")),
            "is_error": bool(ev.get("is_error")),
        }
        if kind == "user.custom_tool_result":
            self.custom_calls.pop(call_id, None)
        return [EventDraft(EventType.TOOL_RESULT, data, f"tool:{call_id}:done", kind)]

    def _confirmation(self, ev: dict[str, Any], eid: str, kind: str) -> list[EventDraft]:
        tool_use_id = ev.get("tool_use_id")
        if not isinstance(tool_use_id, str) or ev.get("result") not in ("allow", "deny"):
            return []
        decision = ApprovalDecision.ALLOW_ONCE if ev["result"] == "allow" else ApprovalDecision.DENY
        data: dict[str, Any] = {
            "native_approval_id": tool_use_id,
            "decision": decision.value,
            "by": "runtime",
        }
        if ev.get("deny_message"):
            data["message"] = str(ev["deny_message"])
        native_id = approval_resolved_native_id(tool_use_id)
        return [EventDraft(EventType.APPROVAL_RESOLVED, data, native_id, kind)]

    def _usage(self, ev: dict[str, Any], eid: str, kind: str) -> list[EventDraft]:
        usage = _dict(ev.get("model_usage"))
        tokens = {
            "input_tokens": int(usage.get("input_tokens") or 0),
            "output_tokens": int(usage.get("output_tokens") or 0),
            "cache_read_tokens": int(usage.get("cache_read_input_tokens") or 0),
            "cache_write_tokens": int(usage.get("cache_creation_input_tokens") or 0),
        }
        if not any(tokens.values()):
            return []
        data: dict[str, Any] = {"scope": "request", "cumulative": False, **tokens}
        if self.price is not None:
            p = self.price
            cost = (
                tokens["input_tokens"] * p.input
                + tokens["output_tokens"] * p.output
                + tokens["cache_read_tokens"] * p.cache_read
                + tokens["cache_write_tokens"] * p.cache_write
            ) / 1_000_000
            data.update(cost_usd=cost, cost_micros=usd_to_micros(cost), cost_source="computed")
        return [EventDraft(EventType.USAGE, data, f"usage:{eid}", kind)]


_HANDLERS = {
    "user.message": ClaudeAgentsMapper._user_message,
    "user.interrupt": ClaudeAgentsMapper._interrupt,
    "user.tool_confirmation": ClaudeAgentsMapper._confirmation,
    "user.custom_tool_result": ClaudeAgentsMapper._tool_result,
    "agent.message": ClaudeAgentsMapper._message,
    "event_delta": ClaudeAgentsMapper._delta,
    "agent.tool_use": ClaudeAgentsMapper._tool_use,
    "agent.mcp_tool_use": ClaudeAgentsMapper._tool_use,
    "agent.custom_tool_use": ClaudeAgentsMapper._custom_tool_use,
    "agent.tool_result": ClaudeAgentsMapper._tool_result,
    "agent.mcp_tool_result": ClaudeAgentsMapper._tool_result,
    "span.model_request_end": ClaudeAgentsMapper._usage,
    "session.error": ClaudeAgentsMapper._error,
    "session.status_idle": ClaudeAgentsMapper._idle,
    "session.status_terminated": ClaudeAgentsMapper._terminated,
    "session.deleted": ClaudeAgentsMapper._terminated,
}
