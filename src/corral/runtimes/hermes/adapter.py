"""Hermes Agent (NousResearch ``hermes-agent``) behind the RuntimeAdapter contract.

A Corral session is a Hermes session id (a row made with ``POST /api/sessions``); each turn is one
``POST /v1/runs`` with that ``session_id``. Hermes' runs endpoint does not load the session's
earlier messages by itself, so each turn sends them as ``conversation_history`` (read back from
``GET /api/sessions/{id}/messages``, where Hermes stores every run's messages).

Runtime config keys: none required. Credentials: ``{"api_key": API_SERVER_KEY}``.
Agent metadata keys: none; ``spec.model`` goes to the run's ``model`` (a Hermes model-route
alias; Hermes ignores names it has no route for) and ``spec.instructions`` to ``instructions``
(Hermes' ephemeral system prompt). Hermes picks its own tools; ``spec.tools`` is not sent.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from corral.domain.errors import RuntimeRejected
from corral.domain.events import ApprovalDecision
from corral.runtimes.base import (
    AgentSpec,
    Capabilities,
    EventMapper,
    EventSubscription,
    NativeEvent,
    NativeSession,
    RuntimeTarget,
)
from corral.runtimes.hermes.client import HermesClient
from corral.runtimes.hermes.mapping import (
    DECISION_TO_CHOICE,
    STREAM_GAP_EVENT,
    HermesMapper,
    split_approval_id,
)
from corral.runtimes.hermes.runs import BUSY_STATUSES, RunHub, events_from_status

#: ``/v1/capabilities`` features the adapter relies on.
REQUIRED_FEATURES = (
    "run_submission",
    "run_status",
    "run_events_sse",
    "run_stop",
    "session_resources",
)


def conversation_history(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Stored messages as the ``{role, content}`` pairs ``/v1/runs`` accepts (text only: the
    runs endpoint cannot take tool calls back, so earlier tool traffic is left out)."""
    history: list[dict[str, str]] = []
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if role in ("user", "assistant") and isinstance(content, str) and content.strip():
            history.append({"role": str(role), "content": content})
    return history


def final_answer(messages: list[dict[str, Any]]) -> str | None:
    """The assistant's final text after the last user message, if the turn got that far."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    for message in reversed(messages[last_user + 1 :]):
        if message.get("role") == "assistant" and not message.get("tool_calls"):
            content = message.get("content")
            return content if isinstance(content, str) else None
    return None


class HermesAdapter:
    kind: ClassVar[str] = "hermes"
    capabilities: ClassVar[Capabilities] = Capabilities(
        streaming=True,
        stream_resume=False,  # one consumer per run stream, no replay, no cursor
        history=False,  # a broken stream's deltas and tool events are gone; outcome only
        token_deltas=True,
        tool_events=True,  # partial: no call ids, no arguments, no output
        approvals=True,
        client_tools=False,
        usage=True,  # tokens only, no cost
        cancel=True,
    )

    def __init__(self, target: RuntimeTarget) -> None:
        creds = target.credentials or {}
        self._client = HermesClient(target.base_url, api_key=creds.get("api_key"))
        self._hub = RunHub(self._client)

    async def health(self) -> dict[str, Any]:
        """``/health`` plus ``/v1/capabilities``, which needs the key: a wrong key shows here,
        and so does a build without the runs API this adapter drives."""
        health = await self._client.health()
        features = (await self._client.capabilities()).get("features") or {}
        missing = [f for f in REQUIRED_FEATURES if not features.get(f)]
        if missing:
            raise RuntimeRejected(f"this Hermes API server lacks {', '.join(missing)}")
        return {**health, "features": {f: True for f in REQUIRED_FEATURES}}

    async def create_session(self, spec: AgentSpec, *, title: str) -> NativeSession:
        # Nothing is provisioned per agent: model and instructions travel with each run.
        session_id = f"corral_{uuid.uuid4().hex}"
        # Hermes wants titles unique across sessions.
        body = await self._client.create_session(session_id, f"{title} [{session_id[-8:]}]")
        return NativeSession(native_session_id=session_id, data=(body or {}).get("session") or {})

    async def subscribe(self, native_session_id: str) -> EventSubscription:
        return self._hub.subscribe(native_session_id)

    async def send(self, native_session_id: str, text: str, spec: AgentSpec) -> None:
        messages = await self._client.messages(native_session_id)
        body: dict[str, Any] = {"input": text, "session_id": native_session_id}
        history = conversation_history(messages)
        if history:
            body["conversation_history"] = history
        if spec.instructions:
            body["instructions"] = spec.instructions
        if spec.model:
            body["model"] = spec.model
        run_id = await self._client.start_run(body)
        # Hermes buffers the run's events from now on, so following after the 202 loses none.
        self._hub.follow(native_session_id, run_id)

    async def history(self, native_session_id: str) -> list[NativeEvent]:
        """What can be rebuilt of the session's latest run: its outcome (or waiting approval)
        from the run status, preceded by a gap marker when its live stream broke. When Hermes
        (or this process) no longer knows the run, the final answer comes from the stored
        session messages, also behind a gap marker."""
        nsid = native_session_id
        watch = self._hub.runs.get(nsid)
        events: list[NativeEvent] = []
        if watch is not None:
            if watch.gapped:
                gap = {"run_id": watch.run_id, "reason": "Hermes run stream was interrupted"}
                events.append(NativeEvent(nsid, STREAM_GAP_EVENT, gap))
            status = await self._client.run(watch.run_id)
            if status is not None:
                events += [NativeEvent(nsid, k, p) for k, p in events_from_status(status)]
                return events
        reason = "Hermes no longer knows this session's run; rebuilt from stored messages"
        events.append(NativeEvent(nsid, STREAM_GAP_EVENT, {"reason": reason}))
        answer = final_answer(await self._client.messages(nsid))
        if answer is not None:
            events.append(NativeEvent(nsid, "run.completed", {"run_id": None, "output": answer}))
        return events

    async def user_inputs(self, native_session_id: str) -> list[str]:
        messages = await self._client.messages(native_session_id)
        return [str(m.get("content") or "") for m in messages if m.get("role") == "user"]

    async def status(self, native_session_id: str) -> str:
        watch = self._hub.runs.get(native_session_id)
        if watch is None:
            return "idle"  # no run started by this process: nothing Corral can wait for
        status = await self._client.run(watch.run_id)
        state = (status or {}).get("status")
        if state in BUSY_STATUSES:
            return "busy"
        if state == "waiting_for_approval":
            return "waiting"
        return "idle"

    async def cancel(self, native_session_id: str) -> None:
        watch = self._hub.runs.get(native_session_id)
        if watch is not None:
            await self._client.stop(watch.run_id)

    async def resolve_approval(
        self,
        native_session_id: str,
        native_approval_id: str,
        decision: ApprovalDecision,
        message: str | None,
    ) -> None:
        # Hermes takes no message with a decision; the run id travels in the approval id.
        run_id, request_id = split_approval_id(native_approval_id)
        await self._client.approve(run_id, DECISION_TO_CHOICE[decision], request_id)

    def mapper(self) -> EventMapper:
        return HermesMapper()

    async def aclose(self) -> None:
        await self._hub.aclose()
        await self._client.aclose()
