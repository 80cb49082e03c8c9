"""The A2A test agent's behaviour: an a2a-sdk ``AgentExecutor`` whose model is the mock LLM.

Prompt conventions (on top of the mock LLM's own ``[[tool:...]]``, ``[[error:N]]``,
``[[slow:N]]`` directives, which pass through to the model untouched):

``[[ask:QUESTION]]``
    The task stops in ``input-required`` with an agent message ``QUESTION``; the next message
    on the same task is the answer, and the reply to it finishes the task.

Replies stream as chunks of ONE artifact per model call (first chunk ``append=false``, the
rest ``append=true``, the last one ``lastChunk=true``), the shape A2A clients assemble text
from. A model tool call is run here (the tool echoes its arguments) and reported as a
``working`` status message, since core A2A has no tool events. A model error fails the task
with the upstream message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from corral.sim.opencode.upstream import (
    Finish,
    TextDelta,
    ToolCall,
    UpstreamBroken,
    UpstreamHTTPError,
    UpstreamUnreachable,
    stream_chat,
)

if TYPE_CHECKING:  # a2a-sdk is optional: imported lazily by the app factory
    from a2a.server.agent_execution import RequestContext
    from a2a.server.events import EventQueue
    from a2a.server.tasks import TaskUpdater

ASK = re.compile(r"\[\[ask:(.*?)\]\]", re.DOTALL)
#: The one tool the agent offers its model (the mock LLM only fails requests that carry tools).
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look something up (the test agent echoes the arguments).",
            "parameters": {"type": "object", "properties": {}, "additionalProperties": True},
        },
    }
]
_MAX_STEPS = 4


@dataclass
class AgentConfig:
    llm_url: str
    model: str = "mock-model"
    api_key: str = "mock-key"
    #: Conversation per A2A contextId, so follow-up tasks in a context see earlier turns.
    contexts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class ModelFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def split_ask(text: str) -> tuple[str, str | None]:
    """The prompt without ``[[ask:...]]`` and the question, if one was asked for."""
    match = ASK.search(text)
    if match is None:
        return text, None
    return " ".join((text[: match.start()] + text[match.end() :]).split()), match.group(1).strip()


class ScriptedAgent:
    """Implements a2a-sdk's ``AgentExecutor`` (subclassed at app build time, see ``app``)."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0))

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        from a2a.helpers.proto_helpers import new_task_from_user_message, new_text_message
        from a2a.server.tasks import TaskUpdater
        from a2a.types import TaskState

        task = context.current_task
        message = context.message
        if task is None:
            if message is None:
                return
            task = new_task_from_user_message(message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        history = self.config.contexts.setdefault(task.context_id, [])
        text = context.get_user_input()
        resumed = task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        prompt, question = split_ask(text) if not resumed else (text, None)
        history.append({"role": "user", "content": prompt})
        if question:
            history.append({"role": "assistant", "content": question})
            ask = new_text_message(question, context_id=task.context_id, task_id=task.id)
            await updater.requires_input(ask)
            return
        await updater.start_work()
        try:
            reply = await self._run_model(updater, history)
        except ModelFailed as exc:
            failure = new_text_message(exc.message, context_id=task.context_id, task_id=task.id)
            await updater.failed(failure)
            return
        history.append({"role": "assistant", "content": reply})
        await updater.complete()

    async def _run_model(self, updater: TaskUpdater, history: list[dict[str, Any]]) -> str:
        from a2a.helpers.proto_helpers import new_text_message

        messages = list(history)
        for _ in range(_MAX_STEPS):
            text, calls = await self._stream_step(updater, messages)
            if not calls:
                return text
            messages.append(
                {
                    "role": "assistant",
                    "content": text or None,
                    "tool_calls": [
                        {
                            "id": call.call_id,
                            "type": "function",
                            "function": {
                                "name": call.name,
                                "arguments": json.dumps(call.arguments),
                            },
                        }
                        for call in calls
                    ],
                }
            )
            for call in calls:
                note = f"Calling tool {call.name} {json.dumps(call.arguments, sort_keys=True)}"
                await updater.update_status(
                    _working(),
                    new_text_message(note, context_id=updater.context_id, task_id=updater.task_id),
                )
                output = json.dumps({"tool": call.name, "arguments": call.arguments})
                messages.append({"role": "tool", "tool_call_id": call.call_id, "content": output})
        raise ModelFailed("the model kept calling tools")

    async def _stream_step(
        self, updater: TaskUpdater, messages: list[dict[str, Any]]
    ) -> tuple[str, list[ToolCall]]:
        from a2a.helpers.proto_helpers import new_text_part

        body = {
            "model": self.config.model,
            "messages": messages,
            "tools": TOOLS,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        url = self.config.llm_url.rstrip("/") + "/v1/chat/completions"
        artifact_id: str | None = None
        chunks: list[str] = []
        calls: list[ToolCall] = []
        try:
            async for event in stream_chat(self._http, url, self.config.api_key, body):
                if isinstance(event, TextDelta) and event.text:
                    first = artifact_id is None
                    if artifact_id is None:
                        artifact_id = _artifact_id(updater.task_id, len(messages))
                    chunks.append(event.text)
                    await updater.add_artifact(
                        [new_text_part(event.text)],
                        artifact_id=artifact_id,
                        name="reply",
                        append=not first,
                    )
                elif isinstance(event, ToolCall):
                    calls.append(event)
                elif isinstance(event, Finish) and artifact_id is not None:
                    # An empty closing chunk: the stream says "this artifact is whole".
                    await updater.add_artifact(
                        [new_text_part("")],
                        artifact_id=artifact_id,
                        name="reply",
                        append=True,
                        last_chunk=True,
                    )
        except UpstreamHTTPError as exc:
            raise ModelFailed(f"model call failed ({exc.status}): {exc.message}") from exc
        except (UpstreamUnreachable, UpstreamBroken) as exc:
            raise ModelFailed(f"model call failed: {exc}") from exc
        return "".join(chunks), calls

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        from a2a.server.tasks import TaskUpdater

        task = context.current_task
        if task is None:
            return
        await TaskUpdater(event_queue, task.id, task.context_id).cancel()

    async def aclose(self) -> None:
        await self._http.aclose()


def _working() -> Any:
    from a2a.types import TaskState

    return TaskState.TASK_STATE_WORKING


def _artifact_id(task_id: str, step: int) -> str:
    # Stable per task and model call, so a replayed task names its artifacts the same way.
    return f"{task_id}-reply-{step}"
