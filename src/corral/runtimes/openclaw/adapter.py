"""OpenClaw Gateway behind the RuntimeAdapter contract, over the WebSocket protocol v4.

Why WebSocket and not the OpenAI-compatible HTTP surface: ``/v1/chat/completions`` and
``/v1/responses`` are off by default, run every request as a stateless one-shot run, hide
server-side tool calls, cannot abort a run and never show exec approvals. The WS protocol is the
gateway's own control plane: durable sessions (``sessions.create``), turns (``chat.send``),
token deltas and run ends (``chat``), tool events (``agent`` stream ``tool``), transcript rows
with usage and cost (``session.message``, ``chat.history``), ``chat.abort`` and exec
approvals (``exec.approval.requested`` / ``exec.approval.resolve``).

A Corral session is a gateway session key (``agent:<agentId>:dashboard:<uuid>``). OpenClaw
agents are defined in the gateway's own config, so nothing is provisioned per Corral agent
version: ``spec.metadata["openclaw_agent"]`` (else ``config["agent_id"]``, else ``main``)
names the gateway agent each session runs on.
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
from corral.runtimes.openclaw.bus import GatewayBus
from corral.runtimes.openclaw.mapping import (
    DECISION_TO_NATIVE,
    OpenClawMapper,
    content_text,
    message_id,
    session_of,
)

DEFAULT_AGENT = "main"
_HISTORY_LIMIT = 200


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def current_turn(messages: list[Any], run_id: str | None) -> list[dict[str, Any]]:
    """The rows of the open turn: from its user row (whose idempotency key starts with the run
    id ``chat.send`` returned) on; without a known run, from the last user row on."""
    rows = [m for m in messages if isinstance(m, dict)]
    users = [i for i, m in enumerate(rows) if m.get("role") == "user"]
    if run_id is not None:
        mine = [i for i in users if str(rows[i].get("idempotencyKey", "")).startswith(run_id)]
        if not mine:
            return []  # the gateway has not written this turn's input yet
        return rows[mine[-1] :]
    return rows[users[-1] :] if users else rows


class OpenClawAdapter:
    kind: ClassVar[str] = "openclaw"
    capabilities: ClassVar[Capabilities] = Capabilities(
        streaming=True,
        stream_resume=False,  # no replay cursor for live events; backfill via chat.history
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
        token = creds.get("token") or creds.get("password")
        self._bus = GatewayBus(target.base_url, token if isinstance(token, str) else None)
        agent = target.config.get("agent_id")
        self._default_agent = agent if isinstance(agent, str) and agent else DEFAULT_AGENT
        #: session key -> runId of the last turn this process started (narrows history()).
        self._runs: dict[str, str] = {}

    def _agent_of(self, spec: AgentSpec) -> str:
        agent = spec.metadata.get("openclaw_agent")
        return agent if isinstance(agent, str) and agent else self._default_agent

    async def health(self) -> dict[str, Any]:
        conn = await self._bus.connection()
        server = _dict(conn.hello.get("server"))
        return {
            "healthy": True,
            "version": server.get("version"),
            "protocol": conn.hello.get("protocol"),
        }

    async def create_session(self, spec: AgentSpec, *, title: str) -> NativeSession:
        # No idempotencyKey: the gateway accepts one only from a paired device identity, which a
        # token-authenticated backend client does not have.
        params: dict[str, Any] = {"agentId": self._agent_of(spec)}
        if title:
            params["displayName"] = title[:500]  # not unique, unlike ``label``
        if spec.model and "/" in spec.model:
            params["model"] = spec.model  # provider/model, as the gateway's catalog names it
        body = _dict(await self._bus.request("sessions.create", params))
        key = body.get("key")
        if not isinstance(key, str):
            raise RuntimeRejected("OpenClaw sessions.create answered without a session key")
        data = {"key": key, "sessionId": body.get("sessionId"), "agentId": params["agentId"]}
        return NativeSession(native_session_id=key, data=data)

    async def subscribe(self, native_session_id: str) -> EventSubscription:
        return await self._bus.subscribe(native_session_id)

    async def send(self, native_session_id: str, text: str, spec: AgentSpec) -> None:
        params = {
            "sessionKey": native_session_id,
            "message": text,
            "idempotencyKey": uuid.uuid4().hex,
        }
        body = _dict(await self._bus.request("chat.send", params))
        if isinstance(body.get("runId"), str):
            self._runs[native_session_id] = body["runId"]

    async def _history(self, key: str, limit: int = _HISTORY_LIMIT) -> dict[str, Any]:
        params = {"sessionKey": key, "limit": limit}
        return _dict(await self._bus.request("chat.history", params))

    async def _pending_approvals(self, key: str) -> list[dict[str, Any]]:
        listed = await self._bus.request("exec.approval.list", {})
        approvals = listed if isinstance(listed, list) else _dict(listed).get("approvals") or []
        return [
            a
            for a in approvals
            if isinstance(a, dict) and session_of("exec.approval.requested", a) == key
        ]

    async def history(self, native_session_id: str) -> list[NativeEvent]:
        """The open turn rebuilt from the transcript (rows carry the same ids as the live
        ``session.message`` events) plus its pending exec approvals, which live outside it.

        Deltas are not stored by the gateway; the completed rows carry the text."""
        body = await self._history(native_session_id)
        rows = current_turn(body.get("messages") or [], self._runs.get(native_session_id))
        events = [
            NativeEvent(
                native_session_id,
                "session.message",
                {"sessionKey": native_session_id, "message": row, "messageId": message_id(row)},
            )
            for row in rows
        ]
        for approval in await self._pending_approvals(native_session_id):
            events.append(NativeEvent(native_session_id, "exec.approval.requested", approval))
        return events

    async def user_inputs(self, native_session_id: str) -> list[str]:
        body = await self._history(native_session_id)
        return [
            content_text(m.get("content"))
            for m in body.get("messages") or []
            if isinstance(m, dict) and m.get("role") == "user"
        ]

    async def status(self, native_session_id: str) -> str:
        info = _dict((await self._history(native_session_id, 1)).get("sessionInfo"))
        if not info.get("hasActiveRun"):
            return "idle"
        return "waiting" if await self._pending_approvals(native_session_id) else "busy"

    async def cancel(self, native_session_id: str) -> None:
        await self._bus.request("chat.abort", {"sessionKey": native_session_id})

    async def resolve_approval(
        self,
        native_session_id: str,
        native_approval_id: str,
        decision: ApprovalDecision,
        message: str | None,
    ) -> None:
        # exec approvals take no free-text reason; the decision is all the gateway reads.
        params = {"id": native_approval_id, "decision": DECISION_TO_NATIVE[decision]}
        await self._bus.request("exec.approval.resolve", params)

    def mapper(self) -> EventMapper:
        return OpenClawMapper()

    async def aclose(self) -> None:
        await self._bus.aclose()
