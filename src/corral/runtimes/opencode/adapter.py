"""OpenCode behind the RuntimeAdapter contract: glue between client, bus and mapping."""

from __future__ import annotations

from typing import Any, ClassVar

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
from corral.runtimes.opencode.bus import EventBus
from corral.runtimes.opencode.client import OpenCodeClient
from corral.runtimes.opencode.mapping import DECISION_TO_REPLY, OpenCodeMapper

#: OpenCode's built-in tools; an agent's ``tools`` list switches the others off.
BUILTIN_TOOLS = (
    "bash", "edit", "glob", "grep", "question", "read",
    "skill", "task", "todowrite", "webfetch", "write",
)  # fmt: skip


def prompt_body(text: str, spec: AgentSpec) -> dict[str, Any]:
    body: dict[str, Any] = {"parts": [{"type": "text", "text": text}]}
    if spec.model and "/" in spec.model:
        provider, model = spec.model.split("/", 1)
        body["model"] = {"providerID": provider, "modelID": model}
    if spec.instructions:
        body["system"] = spec.instructions
    if spec.tools:
        allowed = set(spec.tools)
        body["tools"] = {name: name in allowed for name in sorted(allowed | set(BUILTIN_TOOLS))}
    agent = spec.metadata.get("opencode_agent")
    if isinstance(agent, str):
        body["agent"] = agent
    return body


class OpenCodeAdapter:
    kind: ClassVar[str] = "opencode"
    capabilities: ClassVar[Capabilities] = Capabilities(
        streaming=True,
        stream_resume=False,
        history=True,
        token_deltas=True,
        tool_events=True,
        approvals=True,
        client_tools=False,
        usage=True,
        cancel=True,
    )

    def __init__(self, target: RuntimeTarget) -> None:
        creds = target.credentials or {}
        self._client = OpenCodeClient(
            target.base_url,
            username=creds.get("username"),
            password=creds.get("password"),
            directory=target.config.get("directory"),
        )
        self._bus = EventBus(self._client)

    async def health(self) -> dict[str, Any]:
        return await self._client.health()

    async def create_session(self, spec: AgentSpec, *, title: str) -> NativeSession:
        # A title is always sent: without one OpenCode spends an extra model call naming it.
        body = await self._client.create_session(title)
        return NativeSession(native_session_id=body["id"], data=body)

    async def subscribe(self, native_session_id: str) -> EventSubscription:
        return await self._bus.subscribe(native_session_id)

    async def send(self, native_session_id: str, text: str, spec: AgentSpec) -> None:
        await self._client.prompt_async(native_session_id, prompt_body(text, spec))

    async def history(self, native_session_id: str) -> list[NativeEvent]:
        """The current turn rebuilt from stored messages (the last user message and its replies)
        and the session's pending permission requests.

        Corral delivers one input at a time, so nothing before the last user message can be
        missing from its log. Deltas are not stored by OpenCode; the completed parts carry the text.
        """
        messages = await self._client.messages(native_session_id)
        users = [i for i, m in enumerate(messages) if (m.get("info") or {}).get("role") == "user"]
        events: list[NativeEvent] = []
        for message in messages[users[-1] if users else 0 :]:
            info = message.get("info") or {}
            payload: dict[str, Any] = {"properties": {"info": info}}
            events.append(NativeEvent(native_session_id, "message.updated", payload))
            for part in message.get("parts") or []:
                payload = {"properties": {"part": part}}
                events.append(NativeEvent(native_session_id, "message.part.updated", payload))
        # Permission prompts are not part of the message history: a prompt raised while Corral
        # was away is only visible among the pending requests.
        for request in await self._client.permissions():
            if request.get("sessionID") == native_session_id:
                payload = {"properties": request}
                events.append(NativeEvent(native_session_id, "permission.asked", payload))
        return events

    async def user_inputs(self, native_session_id: str) -> list[str]:
        texts: list[str] = []
        for message in await self._client.messages(native_session_id):
            if (message.get("info") or {}).get("role") != "user":
                continue
            parts = message.get("parts") or []
            texts.append(
                "".join(
                    str(p.get("text") or "")
                    for p in parts
                    if p.get("type") == "text" and not p.get("synthetic")
                )
            )
        return texts

    async def status(self, native_session_id: str) -> str:
        status = (await self._client.statuses()).get(native_session_id) or {}
        return str(status.get("type") or "idle")

    async def cancel(self, native_session_id: str) -> None:
        await self._client.abort(native_session_id)

    async def resolve_approval(
        self,
        native_session_id: str,
        native_approval_id: str,
        decision: ApprovalDecision,
        message: str | None,
    ) -> None:
        await self._client.reply_permission(
            native_approval_id, DECISION_TO_REPLY[decision], message
        )

    def mapper(self) -> EventMapper:
        return OpenCodeMapper()

    async def aclose(self) -> None:
        await self._bus.aclose()
        await self._client.aclose()
