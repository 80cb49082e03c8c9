"""Claude Managed Agents behind the RuntimeAdapter contract: glue between client, provisioning,
per-session streams and the pure mapper.

Runtime config (``RuntimeTarget.config``): ``environment_id`` or ``environment_name`` (default
``corral``, created once if missing), ``default_model``, ``permission_policy``, ``auth``
(``x-api-key``, the default, or ``bearer``), ``event_deltas`` (default true: token deltas on the
stream), ``price`` (``{"input", "output"}`` USD per million tokens, for per-request cost).
Credentials: ``{"api_key": ...}``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from corral.domain.errors import InvalidRequest, RuntimeRejected
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
from corral.runtimes.claude_agents.client import ClaudeAgentsClient, Json
from corral.runtimes.claude_agents.mapping import (
    DECISION_TO_RESULT,
    ClaudeAgentsMapper,
    Price,
    content_text,
)
from corral.runtimes.claude_agents.provision import Provisioner
from corral.runtimes.claude_agents.stream import SessionStream

_PAGE = "100"


def _price(config: dict[str, Any]) -> Price | None:
    raw = config.get("price")
    if not isinstance(raw, dict):
        return None
    try:
        return Price(
            input=float(raw.get("input") or 0),
            output=float(raw.get("output") or 0),
            cache_read=float(raw.get("cache_read") or 0),
            cache_write=float(raw.get("cache_write") or 0),
        )
    except (TypeError, ValueError):
        return None


class ClaudeAgentsAdapter:
    kind: ClassVar[str] = "claude_agents"
    capabilities: ClassVar[Capabilities] = Capabilities(
        streaming=True,
        stream_resume=False,  # no replay: a reconnect backfills from the event list instead
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
        config = target.config or {}
        self._client = ClaudeAgentsClient(
            target.base_url,
            creds.get("api_key"),
            bearer=config.get("auth") == "bearer",
        )
        self._provision = Provisioner(self._client, config)
        self._deltas = config.get("event_deltas", True) is not False
        self._price = _price(config)
        self._streams: set[SessionStream] = set()

    async def health(self) -> dict[str, Any]:
        # No health route: listing one environment proves reachability and the key.
        await self._client.obj("GET", "/v1/environments", params={"limit": "1"})
        return {"healthy": True}

    async def create_session(self, spec: AgentSpec, *, title: str) -> NativeSession:
        try:
            return await self._create_session(spec, title)
        except RuntimeRejected as exc:
            if exc.extra.get("http_status") != 404:
                raise
            # The cached agent or environment was deleted on the service: provision again.
            self._provision.forget(spec)
            return await self._create_session(spec, title)

    async def _create_session(self, spec: AgentSpec, title: str) -> NativeSession:
        agent = await self._provision.agent(spec)
        body: Json = {
            "agent": {"type": "agent", "id": agent["id"], "version": agent["version"]},
            "environment_id": await self._provision.environment(),
            "title": title,
            "metadata": {"corral_agent_id": spec.agent_id},
        }
        session = await self._client.obj("POST", "/v1/sessions", json_body=body)
        if not isinstance(session.get("id"), str):
            raise RuntimeRejected("Claude Managed Agents session answer has no id")
        return NativeSession(native_session_id=session["id"], data=session)

    async def subscribe(self, native_session_id: str) -> EventSubscription:
        stream = SessionStream(self._client, native_session_id, deltas=self._deltas)
        await stream.start()
        self._streams.add(stream)
        stream.on_close = self._streams.discard
        return stream

    async def send(self, native_session_id: str, text: str, spec: AgentSpec) -> None:
        event = {"type": "user.message", "content": [{"type": "text", "text": text}]}
        await self._client.send_events(native_session_id, [event])

    async def _events(self, native_session_id: str, *extra: tuple[str, str]) -> list[Json]:
        path = f"/v1/sessions/{native_session_id}/events"
        return [e async for e in self._client.pages(path, [("limit", _PAGE), *extra])]

    async def history(self, native_session_id: str) -> list[NativeEvent]:
        """The current turn: every event from the last ``user.message`` on, oldest first.

        Corral delivers one input at a time, so nothing before it can be missing from its log.
        The list is read newest first and stops at that message, so long sessions stay cheap.
        """
        path = f"/v1/sessions/{native_session_id}/events"
        newest_first: list[Json] = []
        async for event in self._client.pages(path, [("limit", _PAGE), ("order", "desc")]):
            newest_first.append(event)
            if event.get("type") == "user.message":
                break
        return [
            NativeEvent(native_session_id, str(e.get("type")), e) for e in reversed(newest_first)
        ]

    async def user_inputs(self, native_session_id: str) -> list[str]:
        messages = await self._events(native_session_id, ("types[]", "user.message"))
        return [content_text(m.get("content")) for m in messages]

    async def status(self, native_session_id: str) -> str:
        session = await self._client.obj("GET", f"/v1/sessions/{native_session_id}")
        status = session.get("status")
        if status in ("running", "rescheduling"):
            return "busy"
        if status != "idle":
            return "idle"
        # Idle also means "waiting for a confirmation or a tool result": only the last idle
        # event's stop reason tells the two apart.
        path = f"/v1/sessions/{native_session_id}/events"
        params = [("types[]", "session.status_idle"), ("order", "desc"), ("limit", "1")]
        body = await self._client.obj("GET", path, params=params)
        last = (body.get("data") or [{}])[0]
        stop = last.get("stop_reason") if isinstance(last, dict) else None
        if isinstance(stop, dict) and stop.get("type") == "requires_action":
            return "waiting"
        return "idle"

    async def cancel(self, native_session_id: str) -> None:
        await self._client.send_events(native_session_id, [{"type": "user.interrupt"}])

    async def resolve_approval(
        self,
        native_session_id: str,
        native_approval_id: str,
        decision: ApprovalDecision,
        message: str | None,
    ) -> None:
        event: Json = {
            "type": "user.tool_confirmation",
            "tool_use_id": native_approval_id,
            "result": DECISION_TO_RESULT[decision],
        }
        if event["result"] == "deny" and message:
            event["deny_message"] = message
        await self._client.send_events(native_session_id, [event])

    async def answer_input(
        self, native_session_id: str, request_id: str, answer: InputAnswer
    ) -> None:
        """Send one ``user.custom_tool_result`` per tool result. A plain-text answer is sent as
        the result of every custom tool the request (an idle event id) is waiting on."""
        results = [(r.call_id, r.output, r.is_error) for r in answer.tool_results]
        if not results and answer.text is not None:
            call_ids = await self._waiting_on(native_session_id, request_id)
            results = [(call_id, answer.text, False) for call_id in call_ids]
        if not results:
            raise InvalidRequest(
                "a Claude custom tool needs tool_results (or text)", code="validation"
            )
        events = [
            {
                "type": "user.custom_tool_result",
                "custom_tool_use_id": call_id,
                "content": [{"type": "text", "text": output}],
                "is_error": is_error,
            }
            for call_id, output, is_error in results
        ]
        await self._client.send_events(native_session_id, events)

    async def _waiting_on(self, native_session_id: str, request_id: str) -> list[str]:
        events = await self.history(native_session_id)
        custom = {e.payload.get("id") for e in events if e.type == "agent.custom_tool_use"}
        for event in events:
            if event.payload.get("id") == request_id:
                stop = event.payload.get("stop_reason") or {}
                return [i for i in stop.get("event_ids") or [] if i in custom]
        return []

    def mapper(self) -> EventMapper:
        return ClaudeAgentsMapper(price=self._price)

    async def aclose(self) -> None:
        for stream in list(self._streams):
            await stream.aclose()
        await self._client.aclose()
