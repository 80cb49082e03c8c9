"""Stored events -> spans: pure mapping, no I/O and no clock.

One turn is one trace. Its ids derive from the turn id, so whichever replica records the turn's
events (the one that started it, or the one that took it over after a crash) puts them in the
same trace under the same ``invoke_agent`` span, and a span rebuilt from the store has the id it
had the first time. A :class:`TurnTrace` folds one turn's events in order: ``execute_tool`` spans
run from ``tool.call`` to ``tool.result`` (matched by call id), ``await_approval`` spans from
``approval.requested`` to ``approval.resolved``; ``invocation.turn_span`` closes the turn with
its usage, outcome and who ran it. Times are the events' own timestamps.

Message and tool contents appear only with ``content=True`` (the org opted in).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from corral.domain.events import Event, EventType
from corral.telemetry import semconv as sc

Attributes = dict[str, Any]

#: Content attributes are cut to this many characters (a collector limits them anyway).
CONTENT_LIMIT = 8192


class SpanKind(StrEnum):
    INTERNAL = "internal"
    CLIENT = "client"


class SpanStatus(StrEnum):
    UNSET = "unset"
    OK = "ok"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """A finished span, as exported and as stored (ids are lowercase hex)."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: SpanKind
    start: datetime
    end: datetime
    status: SpanStatus
    attributes: Attributes
    session_id: str | None = None
    turn_id: str | None = None


def _digest(text: str, size: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[: size * 2]


def trace_id_of(turn_id: str) -> str:
    return _digest(f"corral.trace:{turn_id}", 16)


def turn_span_id(turn_id: str) -> str:
    return _digest(f"corral.span:{turn_id}", 8)


def tool_span_id(turn_id: str, call_id: str) -> str:
    return _digest(f"corral.tool:{turn_id}:{call_id}", 8)


def approval_span_id(turn_id: str, approval_id: str) -> str:
    return _digest(f"corral.approval:{turn_id}:{approval_id}", 8)


def decision_attributes(
    *,
    outcome: Any,
    code: Any,
    reason: Any,
    policy_id: Any = None,
    policy_version: Any = None,
    scope: Any = None,
    epoch: Any = None,
) -> Attributes:
    attrs: Attributes = {
        sc.DECISION_OUTCOME: str(outcome),
        sc.DECISION_CODE: str(code),
        sc.DECISION_REASON: str(reason),
    }
    optional = {
        sc.POLICY_ID: policy_id,
        sc.POLICY_VERSION: policy_version,
        sc.DECISION_SCOPE: scope,
        sc.EPOCH: epoch,
    }
    attrs.update({k: v for k, v in optional.items() if v is not None})
    return attrs


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def clip(value: Any) -> str:
    """Content for an attribute: text as is, anything else as JSON, cut to the limit."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:CONTENT_LIMIT]


@dataclass
class _Tool:
    name: str
    start: datetime
    kind: str | None
    arguments: Any
    decision: Attributes = field(default_factory=dict)


@dataclass
class _Approval:
    start: datetime
    name: str | None
    call_id: str | None


@dataclass
class TurnTrace:
    """One turn's events folded so far; :meth:`apply` returns the spans each event finishes."""

    turn_id: str
    session_id: str | None = None
    content: bool = False
    started: datetime | None = None
    admitted: datetime | None = None  # when its admission decision began (before the start)
    ended: datetime | None = None
    last_ts: datetime | None = None
    stop_reason: str | None = None
    error_code: str | None = None
    first_chunk: datetime | None = None
    usage_seen: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_micros: int | None = None
    reserved_micros: int | None = None
    input_text: str | None = None
    output_text: list[str] = field(default_factory=list)
    tools: dict[str, _Tool] = field(default_factory=dict)
    finished_tools: set[str] = field(default_factory=set)
    approvals: dict[str, _Approval] = field(default_factory=dict)
    #: Spans that wait for the turn to start (its admission decision, made before the session
    #: or the turn existed): emitted by ``turn.started`` with the session id filled in.
    waiting: list[SpanRecord] = field(default_factory=list)

    @property
    def trace_id(self) -> str:
        return trace_id_of(self.turn_id)

    @property
    def span_id(self) -> str:
        return turn_span_id(self.turn_id)

    def apply(self, event: Event) -> list[SpanRecord]:
        self.session_id = self.session_id or event.session_id
        self.last_ts = event.ts
        kind, data = event.type, event.data
        if kind == EventType.TURN_STARTED:
            self.started = event.ts
            if self.content and isinstance(data.get("text"), str):
                self.input_text = data["text"]
            waiting, self.waiting = self.waiting, []
            ids = {sc.CONVERSATION_ID: self.session_id, sc.SESSION_ID: self.session_id}
            return [replace(s, session_id=self.session_id, attributes=s.attributes | ids)
                    for s in waiting]  # fmt: skip
        if kind == EventType.MESSAGE_DELTA:
            if self.first_chunk is None and self.ended is None:
                self.first_chunk = event.ts
        elif kind == EventType.MESSAGE_COMPLETED:
            self._message(data)
        elif kind == EventType.TOOL_CALL:
            self._tool_call(event)
        elif kind == EventType.TOOL_RESULT:
            return self._end_tool(str(data.get("call_id") or ""), event.ts, data)
        elif kind == EventType.APPROVAL_REQUESTED:
            self._approval_requested(event)
        elif kind == EventType.APPROVAL_RESOLVED:
            return self._end_approval(str(data.get("approval_id") or ""), event.ts, data)
        elif kind == EventType.GOVERNANCE_DECISION and _text(data.get("call_id")) in self.tools:
            self.tools[str(data["call_id"])].decision = _decision_of(data)
        elif kind == EventType.USAGE:
            self._usage(data)
        elif kind == EventType.ERROR:
            code = data.get("code")
            self.error_code = str(code) if code else sc.ERROR_OTHER
        elif kind == EventType.TURN_COMPLETED and self.ended is None:
            self.ended = event.ts
            self.stop_reason = str(data.get("stop_reason") or "")
            if self.content and isinstance(data.get("final_text"), str) and not self.output_text:
                self.output_text.append(data["final_text"])
            return self._close_open(event.ts)
        return []

    def note_tool_decision(self, tool_name: str, attrs: Attributes) -> str | None:
        """A decision about an open call of this tool: stamp it there; return its span id."""
        for call_id, tool in reversed(self.tools.items()):
            if tool.name == tool_name:
                tool.decision = attrs
                return tool_span_id(self.turn_id, call_id)
        return None

    # -- the parts ------------------------------------------------------------------------------

    def _tool_call(self, event: Event) -> None:
        call_id = _text(event.data.get("call_id"))
        if call_id in self.tools and event.data.get("input"):
            # Runtimes report a call as pending before its arguments are complete.
            self.tools[call_id].arguments = event.data["input"]
        elif call_id and call_id not in self.tools and call_id not in self.finished_tools:
            data = event.data
            self.tools[call_id] = _Tool(
                _text(data.get("name")) or "unknown", event.ts, _text(data.get("kind")) or None,
                data.get("input"),
            )  # fmt: skip

    def _approval_requested(self, event: Event) -> None:
        approval_id = _text(event.data.get("approval_id"))
        if approval_id and approval_id not in self.approvals:
            name, call_id = _text(event.data.get("name")), _text(event.data.get("call_id"))
            self.approvals[approval_id] = _Approval(event.ts, name or None, call_id or None)

    def _message(self, data: dict[str, Any]) -> None:
        if (
            not self.content
            or data.get("role") != "assistant"
            or data.get("channel") == "reasoning"
        ):
            return
        for part in data.get("content") or ():
            if isinstance(part, dict) and part.get("type") == "text" and part.get("text"):
                self.output_text.append(str(part["text"]))

    def _usage(self, data: dict[str, Any]) -> None:
        self.usage_seen = True
        self.input_tokens += int(data.get("input_tokens") or 0)
        self.output_tokens += int(data.get("output_tokens") or 0)
        self.cache_read_tokens += int(data.get("cache_read_tokens") or 0)
        self.cache_write_tokens += int(data.get("cache_write_tokens") or 0)
        if data.get("cost_micros") is not None:
            self.cost_micros = (self.cost_micros or 0) + int(data["cost_micros"])

    def common_attributes(self) -> Attributes:
        """What every span of the turn carries: the conversation (session) and the turn."""
        sid = self.session_id or ""
        return {sc.CONVERSATION_ID: sid, sc.SESSION_ID: sid, sc.TURN_ID: self.turn_id}

    def _record(
        self, span_id: str, parent: str, name: str, start: datetime, end: datetime,
        attrs: Attributes, error: str | None,
    ) -> SpanRecord:  # fmt: skip
        if error is not None:
            attrs[sc.ERROR_TYPE] = error
        return SpanRecord(
            self.trace_id, span_id, parent, name, SpanKind.INTERNAL, start, max(start, end),
            SpanStatus.ERROR if error else SpanStatus.UNSET, attrs, self.session_id, self.turn_id,
        )  # fmt: skip

    def _end_tool(
        self, call_id: str, end: datetime, result: dict[str, Any] | None
    ) -> list[SpanRecord]:
        tool = self.tools.pop(call_id, None)
        if tool is None:
            return []  # its call was recorded elsewhere: a rebuild from the store covers it
        self.finished_tools.add(call_id)
        attrs = {
            **self.common_attributes(),
            sc.OPERATION_NAME: sc.EXECUTE_TOOL,
            sc.TOOL_NAME: tool.name,
            sc.TOOL_CALL_ID: call_id,
            **tool.decision,
        }
        if tool.kind in sc.TOOL_TYPES:
            attrs[sc.TOOL_TYPE] = sc.TOOL_TYPES[tool.kind]
        error = None
        if result is None or result.get("is_error"):
            if tool.decision.get(sc.DECISION_OUTCOME) == "deny":
                error = str(tool.decision[sc.DECISION_CODE])  # a rule stopped it
            else:
                error = "unfinished" if result is None else "tool_error"
        if self.content:
            if tool.arguments is not None:
                attrs[sc.TOOL_CALL_ARGUMENTS] = clip(tool.arguments)
            if result is not None and result.get("output") is not None:
                attrs[sc.TOOL_CALL_RESULT] = clip(result["output"])
        span_id = tool_span_id(self.turn_id, call_id)
        name = f"{sc.EXECUTE_TOOL} {tool.name}"
        return [self._record(span_id, self.span_id, name, tool.start, end, attrs, error)]

    def _end_approval(
        self, approval_id: str, end: datetime, resolved: dict[str, Any] | None
    ) -> list[SpanRecord]:
        approval = self.approvals.pop(approval_id, None)
        if approval is None:
            return []
        attrs = {**self.common_attributes(), sc.APPROVAL_ID: approval_id}
        if approval.name:
            attrs[sc.TOOL_NAME] = approval.name
        call_id = approval.call_id
        if call_id:
            attrs[sc.TOOL_CALL_ID] = call_id
        error = "unanswered" if resolved is None else None
        if resolved is not None:
            attrs[sc.APPROVAL_DECISION] = str(resolved.get("decision") or "")
            attrs[sc.APPROVAL_RESOLVED_BY] = str(resolved.get("by") or "")
        known_call = call_id is not None and (
            call_id in self.tools or call_id in self.finished_tools
        )
        parent = tool_span_id(self.turn_id, call_id) if known_call and call_id else self.span_id
        span_id = approval_span_id(self.turn_id, approval_id)
        name = f"await_approval {approval.name or 'tool'}"
        return [self._record(span_id, parent, name, approval.start, end, attrs, error)]

    def _close_open(self, end: datetime) -> list[SpanRecord]:
        """The turn ended: whatever is still open ends with it."""
        spans = []
        for approval_id in list(self.approvals):
            spans += self._end_approval(approval_id, end, None)
        for call_id in list(self.tools):
            spans += self._end_tool(call_id, end, None)
        return spans


def _decision_of(data: dict[str, Any]) -> Attributes:
    return decision_attributes(
        outcome=data.get("outcome"), code=data.get("code"), reason=data.get("reason"),
        policy_id=data.get("policy_id"), policy_version=data.get("policy_version"),
        scope=data.get("scope"), epoch=data.get("epoch"),
    )  # fmt: skip
