"""LangGraph Agent Server native events -> normalized drafts. Pure: no I/O, no clock, never raises.

The adapter yields one ``NativeEvent`` per SSE frame of a run's stream, with payload
``{"run_id", "data", "id"}`` (``type`` is the SSE event name: ``metadata``, ``messages`` for the
``messages-tuple`` mode, ``updates``, ``error``), plus three synthetic types of its own:

* ``corral.run_end`` ``{run_id, status, thread_status}``: the run's stream closed (the server sends
  no ``end`` frame) and this is what ``GET`` said about the run and its thread afterwards;
* ``corral.run_status`` ``{run_id, status, error?}``: from ``history()``, the thread's latest run;
  it only informs the stop reason of :meth:`LangGraphMapper.finish_turn`, it never ends a turn;
* history replays the thread state as ``updates`` frames (``{"history": {"messages": [...]}}`` and
  ``{"__interrupt__": [...]}``), so live and backfilled messages go through one code path.

Native ids come from what LangGraph keeps stable: message ids (the streamed chunks carry the id of
the message the state later holds), tool-call ids, interrupt ids and run ids. SSE frame ids are not
used: the in-memory server stamps ``<ms>-0`` and repeats it within a millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corral.domain.events import (
    ApprovalDecision,
    EventDraft,
    EventType,
    StopReason,
    turn_end_native_id,
)
from corral.runtimes.base import NativeEvent

RUN_END = "corral.run_end"
RUN_STATUS = "corral.run_status"

#: HITL decisions Corral can give (``edit``/``respond`` need content Corral's API does not carry).
APPROVAL_CHOICES = [ApprovalDecision.ALLOW_ONCE.value, ApprovalDecision.DENY.value]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(content: Any) -> str:
    """LangChain content is a string or a list of blocks; keep the text blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text") or ""))
        return "".join(parts)
    return ""


def _messages(update: Any) -> list[dict[str, Any]]:
    """The messages a node's state delta adds (a list, or a single message)."""
    messages = _dict(update).get("messages")
    if isinstance(messages, dict):
        messages = [messages]
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def is_approval(value: Any) -> bool:
    """A Deep Agents human-in-the-loop interrupt (anything else asks the caller for input)."""
    return isinstance(_dict(value).get("action_requests"), list)


@dataclass
class LangGraphMapper:
    turn_id: str | None = None
    text_offsets: dict[str, int] = field(default_factory=dict)
    tool_calls: set[str] = field(default_factory=set)
    #: Calls without a result yet, by tool name: HITL interrupts name the tool, not the call.
    open_calls: dict[str, str] = field(default_factory=dict)
    turn_error: bool = False
    run_status: str | None = None
    #: The current run stopped at an interrupt: its end is a pause, not the turn's end.
    waiting: bool = False
    #: The run whose frames came last: a late end report of an earlier run must not end the turn.
    current_run: str | None = None

    def begin_turn(self, turn_id: str) -> None:
        self.turn_id = turn_id
        self.turn_error = False
        self.run_status = None

    def map(self, event: NativeEvent) -> list[EventDraft]:
        payload = event.payload
        kind = event.type
        try:
            if kind == "metadata":  # a run starts: whatever it resumes is answered
                self.waiting = False
                run_id = _dict(payload.get("data")).get("run_id")
                self.current_run = run_id if isinstance(run_id, str) else self.current_run
                return []
            if kind == "messages":
                return self._chunk(payload.get("data"), kind)
            if kind == "updates":
                live = not payload.get("history")
                return self._updates(_dict(payload.get("data")), kind, live=live)
            if kind == "error":
                return self._error(str(payload.get("run_id")), _dict(payload.get("data")), kind)
            if kind == RUN_END:
                return self._run_end(payload, kind)
            if kind == RUN_STATUS:
                return self._run_status(payload, kind)
        except (TypeError, ValueError, AttributeError):
            return []  # odd shapes from a newer server: skip, never crash the pump
        return []

    def finish_turn(self) -> list[EventDraft]:
        """The runtime is idle and nobody heard the run end: close the turn with what we know."""
        return self._complete(self.run_status, "corral.reconciled")

    # -- turn end --------------------------------------------------------------------------

    def _complete(self, run_status: str | None, kind: str) -> list[EventDraft]:
        if self.turn_id is None:
            return []
        if run_status == "interrupted":
            reason = StopReason.CANCELLED
        elif self.turn_error or run_status in ("error", "timeout"):
            reason = StopReason.ERROR
        else:
            reason = StopReason.END_TURN
        data = {"turn_id": self.turn_id, "stop_reason": reason.value}
        draft = EventDraft(EventType.TURN_COMPLETED, data, turn_end_native_id(self.turn_id), kind)
        self.turn_id = None
        return [draft]

    def _run_end(self, payload: dict[str, Any], kind: str) -> list[EventDraft]:
        run_id = payload.get("run_id")
        if run_id is not None and self.current_run is not None and run_id != self.current_run:
            return []  # the paused run's end, reported after its resume already started
        status = payload.get("status")
        self.run_status = status if isinstance(status, str) else None
        drafts: list[EventDraft] = []
        if status in ("error", "timeout") and not self.turn_error:
            message = {"error": "RunError", "message": f"run ended with status {status}"}
            drafts += self._error(str(payload.get("run_id")), message, kind)
        # An interrupted *thread* waits for a human (approval or input): the turn goes on in
        # the run that resumes it. A cancelled *run* also leaves no pending interrupt.
        paused = self.waiting or payload.get("thread_status") == "interrupted"
        if paused and status != "interrupted":
            return drafts
        return drafts + self._complete(self.run_status, kind)

    def _run_status(self, payload: dict[str, Any], kind: str) -> list[EventDraft]:
        status = payload.get("status")
        self.run_status = status if isinstance(status, str) else None
        if status == "error":
            return self._error(str(payload.get("run_id")), _dict(payload.get("error")), kind)
        return []

    def _error(self, run_id: str, body: dict[str, Any], kind: str) -> list[EventDraft]:
        self.turn_error = True
        code = str(body.get("error") or "RunError")
        data: dict[str, Any] = {
            "code": code,
            "message": str(body.get("message") or code),
            "retryable": False,
            "fatal": False,
        }
        # The server hides upstream details ("An internal error occurred") but keeps the class.
        if code.endswith("InvalidRequestError") or code.endswith("BadRequestError"):
            data["http_status"] = 400
        return [EventDraft(EventType.ERROR, data, f"error:{run_id}", kind)]

    # -- streamed tokens -------------------------------------------------------------------

    def _chunk(self, data: Any, kind: str) -> list[EventDraft]:
        if not isinstance(data, list) or not data:
            return []
        chunk = _dict(data[0])
        if chunk.get("type") not in ("AIMessageChunk", "ai"):
            return []
        message_id, text = chunk.get("id"), _text(chunk.get("content"))
        if not isinstance(message_id, str) or not text:
            return []
        offset = self.text_offsets.get(message_id, 0)
        self.text_offsets[message_id] = offset + len(text)
        draft_data = {
            "message_id": message_id,
            "role": "assistant",
            "channel": "text",
            "text": text,
        }
        return [
            EventDraft(EventType.MESSAGE_DELTA, draft_data, f"delta:{message_id}:{offset}", kind)
        ]

    # -- state updates ---------------------------------------------------------------------

    def _updates(self, data: dict[str, Any], kind: str, *, live: bool) -> list[EventDraft]:
        drafts: list[EventDraft] = []
        for node, update in data.items():
            if node == "__interrupt__":
                # A backfilled interrupt may already be answered by a run now going on; only
                # a live one says "this run pauses here".
                self.waiting = self.waiting or (live and bool(update))
                for item in update if isinstance(update, list) else []:
                    drafts += self._interrupt(_dict(item), kind)
                continue
            for message in _messages(update):
                drafts += self._message(message, kind)
        return drafts

    def _message(self, message: dict[str, Any], kind: str) -> list[EventDraft]:
        kind_of = message.get("type")
        if kind_of == "ai":
            return self._ai_message(message, kind)
        if kind_of == "tool":
            return self._tool_message(message, kind)
        return []

    def _ai_message(self, message: dict[str, Any], kind: str) -> list[EventDraft]:
        drafts: list[EventDraft] = []
        message_id = message.get("id")
        text = _text(message.get("content"))
        if text:
            data = {
                "message_id": message_id,
                "role": "assistant",
                "channel": "text",
                "content": [{"type": "text", "text": text}],
            }
            drafts.append(
                EventDraft(EventType.MESSAGE_COMPLETED, data, f"message:{message_id}", kind)
            )
        for call in message.get("tool_calls") or []:
            call = _dict(call)
            call_id = call.get("id")
            if not isinstance(call_id, str):
                continue
            self.tool_calls.add(call_id)
            self.open_calls[str(call.get("name"))] = call_id
            data = {
                "call_id": call_id,
                "name": call.get("name"),
                "input": _dict(call.get("args")),
                "kind": "builtin",
                "status": "pending",
            }
            drafts.append(EventDraft(EventType.TOOL_CALL, data, f"tool:{call_id}:call", kind))
        # Thread state keeps it under additional_kwargs (top level null), the stream on top.
        usage = _dict(message.get("usage_metadata")) or _dict(
            _dict(message.get("additional_kwargs")).get("usage_metadata")
        )
        if usage:
            drafts.append(_usage(str(message_id), usage, kind))
        return drafts

    def _tool_message(self, message: dict[str, Any], kind: str) -> list[EventDraft]:
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str):
            return []
        drafts: list[EventDraft] = []
        if self.open_calls.get(str(message.get("name"))) == call_id:
            del self.open_calls[str(message.get("name"))]
        if call_id not in self.tool_calls:
            # Only the result was seen (a resumed run after a gap): report the call first.
            self.tool_calls.add(call_id)
            data = {"call_id": call_id, "name": message.get("name"), "input": None,
                    "kind": "builtin", "status": "pending"}  # fmt: skip
            drafts.append(EventDraft(EventType.TOOL_CALL, data, f"tool:{call_id}:call", kind))
        data = {
            "call_id": call_id,
            "name": message.get("name"),
            "output": _text(message.get("content")),
            "is_error": message.get("status") == "error",
        }
        drafts.append(EventDraft(EventType.TOOL_RESULT, data, f"tool:{call_id}:result", kind))
        return drafts

    def _interrupt(self, item: dict[str, Any], kind: str) -> list[EventDraft]:
        interrupt_id, value = item.get("id"), item.get("value")
        if not isinstance(interrupt_id, str):
            return []
        if is_approval(value):
            requests = [_dict(r) for r in _dict(value).get("action_requests") or []]
            first = requests[0] if requests else {}
            data = {
                "native_approval_id": interrupt_id,
                "call_id": self.open_calls.get(str(first.get("name"))),
                "name": first.get("name"),
                "input": _dict(first.get("args")),
                "description": first.get("description"),
                "actions": [{"name": r.get("name"), "args": r.get("args")} for r in requests],
                "choices": APPROVAL_CHOICES,
            }
            native_id = f"interrupt:{interrupt_id}"
            return [EventDraft(EventType.APPROVAL_REQUESTED, data, native_id, kind)]
        prompt = _dict(value).get("question") if isinstance(value, dict) else value
        data = {
            "request_id": interrupt_id,
            "kind": "question",
            "prompt": prompt if isinstance(prompt, str) else None,
            "value": value,
        }
        return [EventDraft(EventType.INPUT_REQUESTED, data, f"interrupt:{interrupt_id}", kind)]


def _usage(message_id: str, usage: dict[str, Any], kind: str) -> EventDraft:
    input_details = _dict(usage.get("input_token_details"))
    output_details = _dict(usage.get("output_token_details"))
    data = {
        "scope": "request",
        "cumulative": False,
        "message_id": message_id,
        "input_tokens": int(usage.get("input_tokens") or 0),
        "output_tokens": int(usage.get("output_tokens") or 0),
        "total_tokens": int(usage.get("total_tokens") or 0),
        "cache_read_tokens": int(input_details.get("cache_read") or 0),
        "cache_write_tokens": int(input_details.get("cache_creation") or 0),
        "reasoning_tokens": int(output_details.get("reasoning") or 0),
        "cost_source": "runtime",
    }
    return EventDraft(EventType.USAGE, data, f"usage:{message_id}", kind)
