"""Per-session agent-loop state and the tool phase of a turn: validating client answers,
emitting the model's tool uses, running the ones that need nobody, and feeding answers back.

Tool uses are keyed by their event id (``sevt_…``), which is also the tool-call id in the
OpenAI-format conversation sent to the mock LLM, so results line up on both sides.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from corral.sim.claude_agents import tools as toolset
from corral.sim.claude_agents.errors import ApiError
from corral.sim.claude_agents.ids import new_id, now_iso
from corral.sim.claude_agents.store import Json, SessionRecord
from corral.sim.opencode import upstream

__all__ = [
    "Run",
    "apply_answers",
    "emit",
    "processed",
    "run_tools",
    "text_of",
    "tool_uses",
    "validate",
]


@dataclass
class Run:
    """Agent-loop state of one session."""

    conversation: list[Json] = field(default_factory=list)
    inbox: list[Json] = field(default_factory=list)  # queued user.message events
    pending: dict[str, Json] = field(default_factory=dict)  # blocking event id -> event
    answers: dict[str, Json] = field(default_factory=dict)  # blocking event id -> answer
    task: asyncio.Task[None] | None = None
    open_span: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done()


def _text(content: Any) -> str:
    if not isinstance(content, list):
        return ""
    return "\n".join(str(b.get("text")) for b in content if isinstance(b, dict) and "text" in b)


def text_of(content: Any) -> str:
    if not isinstance(content, list):
        return ""
    return "\n".join(str(b.get("text")) for b in content if isinstance(b, dict) and "text" in b)


def emit(session: SessionRecord, type_: str, **fields: Any) -> Json:
    """Emit a service-side event, stamped as processed now."""
    event = {"id": fields.pop("id", None) or new_id("sevt"), "type": type_, **fields}
    event["processed_at"] = now_iso()
    return session.emit(event)


def processed(session: SessionRecord, event: Json) -> None:
    """Re-emit a queued client event with its ``processed_at`` (the stream's second copy)."""
    session.emit({**event, "processed_at": now_iso()})


def validate(run: Run, event: Json) -> None:
    kind = event.get("type")
    if kind == "user.message":
        if not isinstance(event.get("content"), list) or not event["content"]:
            raise ApiError(400, "events[0].content: Field required")
    elif kind == "user.tool_confirmation":
        target = run.pending.get(str(event.get("tool_use_id")))
        if target is None or target["type"] != "agent.tool_use":
            raise ApiError(400, "tool_use_id: no tool use awaits confirmation with this id")
        if event.get("result") not in ("allow", "deny"):
            raise ApiError(400, "result: Input should be 'allow' or 'deny'")
        if event.get("deny_message") and event["result"] != "deny":
            raise ApiError(400, "deny_message: only allowed when result is 'deny'")
    elif kind == "user.custom_tool_result":
        target = run.pending.get(str(event.get("custom_tool_use_id")))
        if target is None or target["type"] != "agent.custom_tool_use":
            raise ApiError(400, "custom_tool_use_id: no custom tool use awaits this id")
    elif kind not in ("user.interrupt", "system.message", "user.define_outcome"):
        raise ApiError(400, f"events[0].type: unsupported event type {kind!r}")


def apply_answers(session: SessionRecord, run: Run, files: dict[str, str]) -> None:
    for pid, blocked in list(run.pending.items()):
        answer = run.answers.get(pid)
        if answer is None:
            continue
        processed(session, answer)
        if blocked["type"] == "agent.custom_tool_use":
            output, is_error = text_of(answer.get("content")), bool(answer.get("is_error"))
        elif answer.get("result") == "allow":
            output, is_error = toolset.run_builtin(blocked["name"], blocked["input"], files)
            tool_result(session, pid, output, is_error)
        else:
            output = answer.get("deny_message") or "The user denied this tool call."
            is_error = True
            tool_result(session, pid, output, is_error)
        content = f"Error: {output}" if is_error else output
        run.conversation.append({"role": "tool", "tool_call_id": pid, "content": content})
    run.pending.clear()
    run.answers.clear()


def tool_result(session: SessionRecord, tool_use_id: str, out: str, err: bool) -> None:
    content = [{"type": "text", "text": out}]
    emit(session, "agent.tool_result", tool_use_id=tool_use_id, content=content, is_error=err)


def tool_uses(
    session: SessionRecord,
    run: Run,
    text: str,
    calls: list[upstream.ToolCall],
    agent_tools: dict[str, toolset.AgentTool],
) -> list[tuple[Json, toolset.AgentTool | None]]:
    """Emit the model's tool uses; return those that run without asking anyone."""
    if not calls:
        run.conversation.append({"role": "assistant", "content": text})
        return []
    ids = [new_id("sevt") for _ in calls]
    tool_calls = [
        {
            "id": event_id,
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
        }
        for event_id, call in zip(ids, calls, strict=True)
    ]
    run.conversation.append(
        {"role": "assistant", "content": text or None, "tool_calls": tool_calls}
    )
    runnable: list[tuple[Json, toolset.AgentTool | None]] = []
    for event_id, call in zip(ids, calls, strict=True):
        tool = agent_tools.get(call.name)
        if tool is not None and tool.kind == "custom":
            event = emit(
                session, "agent.custom_tool_use", id=event_id, name=call.name,
                input=call.arguments,
            )  # fmt: skip
            run.pending[event_id] = event
            continue
        policy = tool.policy if tool is not None else "always_allow"
        ask = tool is not None and policy == "always_ask"
        event = emit(
            session,
            "agent.tool_use",
            id=event_id,
            name=call.name,
            input=call.arguments,
            # A tool the agent does not have is refused before any policy applies.
            evaluated_permission="deny" if tool is None else ("ask" if ask else "allow"),
            evaluation=None if tool is None else {"type": policy},
        )
        if ask:
            run.pending[event_id] = event
        else:
            runnable.append((event, tool))
    return runnable


def run_tools(
    session: SessionRecord,
    run: Run,
    runnable: list[tuple[Json, toolset.AgentTool | None]],
    files: dict[str, str],
) -> None:
    for event, tool in runnable:
        if tool is None:
            output, is_error = f"Tool {event['name']!r} is not enabled for this agent.", True
        else:
            output, is_error = toolset.run_builtin(event["name"], event["input"], files)
        tool_result(session, event["id"], output, is_error)
        content = f"Error: {output}" if is_error else output
        run.conversation.append({"role": "tool", "tool_call_id": event["id"], "content": content})
