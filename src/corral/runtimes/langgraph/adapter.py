"""LangGraph Agent Server (e.g. Deep Agents under ``langgraph dev``) behind the RuntimeAdapter
contract: one thread per Corral session, one background run per turn (and per resume), and a
session-level subscription that joins each run's resumable stream (:mod:`.streams`).

Runtime config (``RuntimeTarget.config``): ``assistant_id`` (default ``"agent"``, the graph id in
``langgraph.json``). Credentials (optional): ``{"api_key": ...}``, sent as ``x-api-key``.
Per-agent settings (``AgentSpec.metadata``): ``langgraph_assistant_id`` overrides the assistant,
``langgraph_config`` / ``langgraph_context`` are passed as the run's ``config`` / ``context``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, ClassVar

from corral.domain.errors import RuntimeRejected
from corral.domain.events import ApprovalDecision
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
from corral.runtimes.langgraph.client import LangGraphClient
from corral.runtimes.langgraph.mapping import RUN_END, RUN_STATUS, LangGraphMapper
from corral.runtimes.langgraph.streams import RunStreams

_ACTIVE = ("pending", "running")
#: How long a resume waits for the paused run to finish closing (it is reported interrupted a
#: moment before the run itself ends, and ``multitask_strategy=reject`` answers 409 until then).
_RESUME_WAIT_S = 10.0


def _messages(values: Any) -> list[dict[str, Any]]:
    messages = values.get("messages") if isinstance(values, dict) else None
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(
            str(b.get("text") or "") for b in content if isinstance(b, dict) and "text" in b
        )
    return content if isinstance(content, str) else ""


class LangGraphAdapter:
    kind: ClassVar[str] = "langgraph"
    capabilities: ClassVar[Capabilities] = Capabilities(
        streaming=True,
        stream_resume=True,
        history=True,
        token_deltas=True,
        tool_events=True,
        approvals=True,
        client_tools=True,
        usage=True,
        cancel=True,
    )

    def __init__(self, target: RuntimeTarget) -> None:
        creds = target.credentials or {}
        api_key = creds.get("api_key")
        self._client = LangGraphClient(
            target.base_url, api_key=api_key if isinstance(api_key, str) else None
        )
        self._assistant = str(target.config.get("assistant_id") or "agent")
        self._streams = RunStreams(self._client)

    def _run_body(self, spec: AgentSpec | None) -> dict[str, Any]:
        metadata = spec.metadata if spec is not None else {}
        body: dict[str, Any] = {
            "assistant_id": str(metadata.get("langgraph_assistant_id") or self._assistant)
        }
        for key in ("config", "context"):
            value = metadata.get(f"langgraph_{key}")
            if isinstance(value, dict):
                body[key] = value
        return body

    async def health(self) -> dict[str, Any]:
        return await self._client.health()

    async def create_session(self, spec: AgentSpec, *, title: str) -> NativeSession:
        metadata = {
            "corral_title": title,
            "corral_agent_id": spec.agent_id,
            "corral_agent_version": spec.version,
        }
        thread = await self._client.create_thread(metadata)
        thread_id = thread.get("thread_id")
        if not isinstance(thread_id, str):
            raise RuntimeRejected("LangGraph thread answer has no thread_id")
        return NativeSession(native_session_id=thread_id, data=thread)

    async def subscribe(self, native_session_id: str) -> EventSubscription:
        return await self._streams.subscribe(native_session_id)

    async def send(self, native_session_id: str, text: str, spec: AgentSpec) -> None:
        body = self._run_body(spec)
        body["input"] = {"messages": [{"role": "user", "content": text}]}
        run = await self._client.create_run(native_session_id, body)
        self._streams.follow(native_session_id, run["run_id"])

    async def _resume(self, thread_id: str, resume: Any) -> None:
        body = {**self._run_body(None), "command": {"resume": resume}}
        deadline = time.monotonic() + _RESUME_WAIT_S
        while True:
            try:
                run = await self._client.create_run(thread_id, body)
                break
            except RuntimeRejected as exc:
                if exc.extra.get("http_status") != 409 or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        self._streams.follow(thread_id, run["run_id"])

    async def history(self, native_session_id: str) -> list[NativeEvent]:
        """The open turn rebuilt from thread state: messages since the last human message, the
        pending interrupts, and how the latest run ended (for the stop reason only).

        Corral delivers one input at a time, so nothing before the last human message can be
        missing from its log. Token deltas are not stored; the completed messages carry the text.
        """
        state = await self._client.state(native_session_id)
        messages = _messages(state.get("values"))
        humans = [i for i, m in enumerate(messages) if m.get("type") == "human"]
        turn = messages[humans[-1] + 1 :] if humans else messages
        nsid = native_session_id
        events = [
            NativeEvent(nsid, "updates", {"history": True, "data": {"state": {"messages": turn}}})
        ]
        interrupts = state.get("interrupts")
        if isinstance(interrupts, list) and interrupts:
            data = {"__interrupt__": interrupts}
            events.append(NativeEvent(nsid, "updates", {"history": True, "data": data}))
        runs = await self._client.runs(native_session_id, limit=1)
        if runs and isinstance(runs[0].get("run_id"), str):
            payload: dict[str, Any] = {"run_id": runs[0]["run_id"], "status": runs[0].get("status")}
            if runs[0].get("status") == "error":
                thread = await self._client.thread(native_session_id)
                payload["error"] = thread.get("error")
            events.append(NativeEvent(nsid, RUN_STATUS, payload))
        return events

    async def user_inputs(self, native_session_id: str) -> list[str]:
        state = await self._client.state(native_session_id)
        return [
            _text(m.get("content"))
            for m in _messages(state.get("values"))
            if m.get("type") == "human"
        ]

    async def status(self, native_session_id: str) -> str:
        thread = await self._client.thread(native_session_id)
        if thread.get("status") == "busy":
            return "busy"
        if thread.get("status") == "interrupted":
            return "waiting"
        # A run queued behind other threads' runs leaves its thread idle until a worker takes it.
        runs = await self._client.runs(native_session_id, limit=3)
        return "busy" if any(r.get("status") in _ACTIVE for r in runs) else "idle"

    async def cancel(self, native_session_id: str) -> None:
        runs = await self._client.runs(native_session_id, limit=5)
        active = [r for r in runs if r.get("status") in _ACTIVE]
        for run in active:
            await self._client.cancel_run(native_session_id, str(run["run_id"]))
        if not active:
            # Paused at an interrupt: no run to stop on the runtime (the next input simply
            # supersedes the interrupt), so end the turn here, as the cancelled run would.
            thread = await self._client.thread(native_session_id)
            if thread.get("status") == "interrupted":
                end = {"run_id": None, "status": "interrupted", "thread_status": "interrupted"}
                self._streams.emit(native_session_id, RUN_END, end)

    async def _action_count(self, thread_id: str, interrupt_id: str) -> int:
        state = await self._client.state(thread_id)
        for item in state.get("interrupts") or []:
            if isinstance(item, dict) and item.get("id") == interrupt_id:
                actions = (item.get("value") or {}).get("action_requests")
                return max(1, len(actions)) if isinstance(actions, list) else 1
        raise RuntimeRejected(f"LangGraph has no pending interrupt {interrupt_id}", http_status=404)

    async def resolve_approval(
        self,
        native_session_id: str,
        native_approval_id: str,
        decision: ApprovalDecision,
        message: str | None,
    ) -> None:
        """Deep Agents wants one decision per action request of the interrupt; Corral's single
        answer applies to all of them. ``allow_session``/``allow_always`` approve this once:
        the HITL middleware has no standing permissions."""
        count = await self._action_count(native_session_id, native_approval_id)
        choice: dict[str, Any] = {"type": "approve"}
        if decision is ApprovalDecision.DENY:
            choice = {"type": "reject", **({"message": message} if message else {})}
        resume = {native_approval_id: {"decisions": [choice] * count}}
        await self._resume(native_session_id, resume)

    async def answer_input(
        self, native_session_id: str, request_id: str, answer: InputAnswer
    ) -> None:
        """A plain ``interrupt()`` resumes with the caller's text (tool results as JSON)."""
        value: Any = answer.text
        if value is None:
            value = json.dumps(
                [
                    {"call_id": r.call_id, "output": r.output, "is_error": r.is_error}
                    for r in answer.tool_results
                ]
            )
        await self._resume(native_session_id, {request_id: value})

    def mapper(self) -> EventMapper:
        return LangGraphMapper()

    async def aclose(self) -> None:
        await self._streams.aclose()
        await self._client.aclose()
