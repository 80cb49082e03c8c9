"""A2A agents behind the RuntimeAdapter contract: glue between client, streams and mapping.

A Corral session is one A2A ``contextId`` (generated here; A2A servers adopt the client's);
each turn is a new task streamed with ``message/stream`` / ``SendStreamingMessage``. An
``input-required`` task is answered with a message on the same task (``answer_input``).
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from corral.domain.errors import RuntimeRejected
from corral.runtimes.a2a.client import A2AClient, A2AError, user_message
from corral.runtimes.a2a.mapping import GAP, INTERRUPTED, TASK, TERMINAL, A2AMapper, classify
from corral.runtimes.a2a.mapping import state_of as _state_of
from corral.runtimes.a2a.streams import SessionStreams
from corral.runtimes.base import (
    AgentSpec,
    Capabilities,
    EventMapper,
    EventSubscription,
    InputAnswer,
    NativeEvent,
    NativeSession,
    RuntimeTarget,
)

_TASK_NOT_FOUND, _NOT_CANCELABLE = -32001, -32002


class A2AAdapter:
    kind: ClassVar[str] = "a2a"
    capabilities: ClassVar[Capabilities] = Capabilities(
        streaming=True,
        stream_resume=True,  # tasks/resubscribe / SubscribeToTask, then tasks/get
        history=True,
        token_deltas=True,  # artifact chunks
        tool_events=False,  # not in core A2A
        approvals=False,  # not in core A2A; agents ask with input-required instead
        client_tools=True,  # input-required answered through answer_input
        usage=False,
        cancel=True,
    )

    def __init__(self, target: RuntimeTarget) -> None:
        self._client = A2AClient(target.base_url, dict(target.config), target.credentials)
        resubscribe = target.config.get("resubscribe")
        self._streams = SessionStreams(
            self._client, resubscribe=resubscribe if isinstance(resubscribe, bool) else None
        )

    async def health(self) -> dict[str, Any]:
        card = await self._client.resolve(refresh=True)
        return {
            "healthy": True,
            "name": card.get("name"),
            "version": card.get("version"),
            "protocol": self._client.protocol,
        }

    async def create_session(self, spec: AgentSpec, *, title: str) -> NativeSession:
        # Nothing to provision: the agent is the remote A2A agent. Reading the card checks it
        # is there and fixes the protocol before the first turn.
        card = await self._client.resolve()
        context_id = f"corral-{uuid.uuid4().hex}"
        data = {
            "context_id": context_id,
            "protocol": self._client.protocol,
            "agent": card.get("name"),
            "title": title,
        }
        return NativeSession(native_session_id=context_id, data=data)

    async def subscribe(self, native_session_id: str) -> EventSubscription:
        sub = self._streams.subscribe(native_session_id)
        ctx = self._streams.context(native_session_id)
        if ctx.task_id is None:
            # After a restart: a task still running in this context is followed again.
            task = await self._latest_task(native_session_id)
            if task is not None and _state_of(task.get("status")) not in TERMINAL | INTERRUPTED:
                self._streams.follow(native_session_id, str(task["id"]))
        return sub

    async def send(self, native_session_id: str, text: str, spec: AgentSpec) -> None:
        ctx = self._streams.context(native_session_id)
        ctx.task_id, ctx.state = None, ""  # history() must not offer the previous task now
        await self._stream_message(native_session_id, text, spec.metadata.get("a2a_metadata"))

    async def answer_input(
        self, native_session_id: str, request_id: str, answer: InputAnswer
    ) -> None:
        text = answer.text
        if text is None:  # tool results have no A2A form: send their outputs as the reply
            text = "\n".join(result.output for result in answer.tool_results)
        await self._stream_message(native_session_id, text, None, task_id=request_id)

    async def _stream_message(
        self, context_id: str, text: str, metadata: Any, *, task_id: str | None = None
    ) -> None:
        await self._client.resolve()
        message = user_message(
            self._client.protocol,
            text,
            message_id=f"corral-{uuid.uuid4().hex}",
            context_id=context_id,
            task_id=task_id,
        )
        params: dict[str, Any] = {"message": message}
        if isinstance(metadata, dict):
            params["metadata"] = metadata
        await self._streams.start(context_id, "stream", params)

    async def _current_task(self, context_id: str) -> dict[str, Any] | None:
        ctx = self._streams.context(context_id)
        if ctx.task_id is None:
            return None
        try:
            item = classify(await self._client.call("get", {"id": ctx.task_id}))
        except A2AError as exc:
            if exc.rpc_code == _TASK_NOT_FOUND:
                return None
            raise
        return item[1] if item is not None and item[0] == TASK else None

    async def _latest_task(self, context_id: str) -> dict[str, Any] | None:
        """The context's newest task from ``ListTasks`` (1.0 only; 0.3 servers lack it)."""
        if self._client.protocol != "1.0":
            await self._client.resolve()
            if self._client.protocol != "1.0":
                return None
        try:
            result = await self._client.call("list", {"contextId": context_id})
        except RuntimeRejected:  # no ListTasks here, or refused: best effort only
            return None
        tasks = [t for t in (result or {}).get("tasks") or [] if isinstance(t, dict)]
        tasks = [t for t in tasks if isinstance(t.get("id"), str)]
        if not tasks:
            return None
        newest = max(tasks, key=lambda t: str((t.get("status") or {}).get("timestamp") or ""))
        self._streams.context(context_id).task_id = str(newest["id"])
        return newest

    async def history(self, native_session_id: str) -> list[NativeEvent]:
        """The latest turn's task as ``tasks/get`` has it (history messages and artifacts)."""
        ctx = self._streams.context(native_session_id)
        task = await self._current_task(native_session_id)
        if task is None and ctx.task_id is None:
            task = await self._latest_task(native_session_id)
            if task is not None:
                task = await self._current_task(native_session_id) or task
            elif self._client.protocol != "1.0":
                reason = "the A2A task of this turn is unknown (0.3 has no task list)"
                payload = {"reason": reason, "context_id": native_session_id}
                return [NativeEvent(native_session_id, GAP, payload)]
        return [] if task is None else [NativeEvent(native_session_id, TASK, task)]

    async def status(self, native_session_id: str) -> str:
        task = await self._current_task(native_session_id)
        if task is None:
            return "idle"
        state = _state_of(task.get("status"))
        if state in INTERRUPTED:
            return "waiting"
        return "idle" if state in TERMINAL else "busy"

    async def cancel(self, native_session_id: str) -> None:
        ctx = self._streams.context(native_session_id)
        task_id = ctx.task_id
        if task_id is None:
            task = await self._latest_task(native_session_id)
            task_id = str(task["id"]) if task is not None else None
        if task_id is None:
            return
        try:
            result = await self._client.call("cancel", {"id": task_id})
        except A2AError as exc:
            if exc.rpc_code not in (_NOT_CANCELABLE, _TASK_NOT_FOUND):
                raise  # already finished or gone: nothing left to stop
            return
        # The answer is the canceled task. Some servers (a2a-sdk 0.3) close the turn's stream
        # without a final status, so this snapshot is what tells subscribers the turn ended.
        self._streams.observe(native_session_id, result)

    def mapper(self) -> EventMapper:
        return A2AMapper()

    async def aclose(self) -> None:
        await self._streams.aclose()
        await self._client.aclose()
