"""Cursor Cloud Agents (API v1) behind the RuntimeAdapter contract.

One Cursor agent per Corral session. Cursor creates an agent only together with its first
prompt, so ``create_session`` mints the agent id (``bc-<uuid>``, as the official SDK does)
and the first ``send`` creates the agent and its first run; later sends start runs. Settings
come from the Corral agent's ``metadata["cursor"]`` (documented in docs/runtimes/cursor.md).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, ClassVar

from corral.domain.errors import RuntimeRejected
from corral.runtimes.backoff import Backoff
from corral.runtimes.base import (
    AgentSpec,
    Capabilities,
    EventMapper,
    EventSubscription,
    NativeEvent,
    NativeSession,
    RuntimeTarget,
)
from corral.runtimes.cursor.client import CursorClient, cursor_code
from corral.runtimes.cursor.history import replay_run
from corral.runtimes.cursor.mapping import CursorMapper
from corral.runtimes.cursor.streams import RunStreams

__all__ = ["CursorAdapter", "create_body"]

_ACTIVE = ("CREATING", "RUNNING")
#: How long a follow-up waits out 409 ``agent_busy`` (the previous run still winding down).
_BUSY_WAIT_S = 30.0


def _model_id(spec: AgentSpec, cursor: dict[str, Any]) -> str | None:
    model = cursor.get("model") or spec.model
    if not isinstance(model, str) or not model:
        return None
    # Corral spells models "provider/model"; Cursor model ids have no provider part.
    return model.rsplit("/", 1)[-1]


def cursor_settings(spec: AgentSpec) -> dict[str, Any]:
    settings = spec.metadata.get("cursor")
    return settings if isinstance(settings, dict) else {}


#: Agent metadata key: how many characters of instructions lead the first prompt.
PREFIX_KEY = "corral_prompt_prefix_chars"


def prompt_prefix(spec: AgentSpec) -> str:
    # Cursor has no system-prompt field: the agent's instructions lead its first prompt.
    return f"{spec.instructions}\n\n" if spec.instructions else ""


def run_options(spec: AgentSpec) -> dict[str, Any]:
    cursor = cursor_settings(spec)
    body: dict[str, Any] = {}
    model = _model_id(spec, cursor)
    if model:
        body["model"] = {"id": model}
    if cursor.get("mode") in ("agent", "plan"):
        body["mode"] = cursor["mode"]
    return body


def create_body(agent_id: str, text: str, spec: AgentSpec, name: str | None) -> dict[str, Any]:
    cursor = cursor_settings(spec)
    body: dict[str, Any] = {
        "agentId": agent_id,
        "prompt": {"text": prompt_prefix(spec) + text},
        **run_options(spec),
        # Cursor keeps these tags for the agent's lifetime: they say which Corral agent
        # version the session ran, for anyone reading the agent list on Cursor's side.
        "metadata": {"corral_agent_id": spec.agent_id, "corral_agent_version": str(spec.version)},
    }
    if spec.instructions:
        # So the delivery check can tell the user's own first message from the prefix.
        body["metadata"][PREFIX_KEY] = str(len(prompt_prefix(spec)))
    if name:
        body["name"] = name
    repos = cursor.get("repos")
    if isinstance(repos, list):
        body["repos"] = [r for r in repos if isinstance(r, dict) and r.get("url")]
    for key, wire in (
        ("auto_create_pr", "autoCreatePR"),
        ("env", "env"),
        ("mcp_servers", "mcpServers"),
    ):
        if key in cursor:
            body[wire] = cursor[key]
    return body


class CursorAdapter:
    kind: ClassVar[str] = "cursor"
    capabilities: ClassVar[Capabilities] = Capabilities(
        streaming=True,
        stream_resume=True,
        history=True,
        token_deltas=True,
        tool_events=True,
        approvals=False,
        client_tools=False,
        usage=True,
        cancel=True,
    )

    def __init__(self, target: RuntimeTarget) -> None:
        creds = target.credentials or {}
        api_key = creds.get("api_key")
        version = str(target.config.get("client_version") or "corral")
        self._client = CursorClient(
            target.base_url, api_key if isinstance(api_key, str) else None, version
        )
        self._streams = RunStreams(self._client)
        self._names: dict[str, str] = {}
        #: Agents this process knows exist, with their newest run.
        self._latest: dict[str, str] = {}

    async def health(self) -> dict[str, Any]:
        me = await self._client.me()
        return {"healthy": True, "api_key_name": me.get("apiKeyName")}

    async def create_session(self, spec: AgentSpec, *, title: str) -> NativeSession:
        # Nothing exists on Cursor until the first prompt: the id is minted here and the
        # agent created by the first send, so a session can never provision two agents.
        agent_id = f"bc-{uuid.uuid4()}"
        self._names[agent_id] = title
        return NativeSession(agent_id, {"agent_id": agent_id, "name": title})

    async def subscribe(self, native_session_id: str) -> EventSubscription:
        active = None
        if native_session_id not in self._latest:
            run = await self._latest_run(native_session_id)
            if run is not None and run.get("status") in _ACTIVE:
                active = str(run["id"])
        return self._streams.subscribe(native_session_id, active)

    async def send(self, native_session_id: str, text: str, spec: AgentSpec) -> None:
        agent_id = native_session_id
        if agent_id not in self._latest and await self._agent(agent_id) is None:
            run_id = await self._create(agent_id, text, spec)
        else:
            run_id = await self._follow_up(agent_id, text, spec)
        if not run_id:
            raise RuntimeRejected(f"Cursor accepted the prompt for {agent_id} but named no run")
        self._latest[agent_id] = run_id
        self._streams.attach(agent_id, run_id)

    async def _create(self, agent_id: str, text: str, spec: AgentSpec) -> str:
        body = create_body(agent_id, text, spec, self._names.get(agent_id))
        try:
            answer = await self._client.create_agent(body)
        except RuntimeRejected as exc:
            if cursor_code(exc) != "agent_id_conflict":
                raise
            # An earlier attempt of this very send created it (the answer was lost): the
            # prompt is delivered, so adopt that agent's run instead of sending it twice.
            agent = await self._client.get_agent(agent_id)
            return str(agent.get("latestRunId") or "")
        returned = (answer.get("agent") or {}).get("id")
        if returned != agent_id:
            raise RuntimeRejected(f"Cursor returned agent {returned!r} for {agent_id!r}")
        return str((answer.get("run") or {}).get("id") or "")

    async def _follow_up(self, agent_id: str, text: str, spec: AgentSpec) -> str:
        body = {"prompt": {"text": text}, **run_options(spec)}
        backoff = Backoff(initial=0.5, maximum=5.0)
        deadline = asyncio.get_running_loop().time() + _BUSY_WAIT_S
        while True:
            try:
                answer = await self._client.create_run(agent_id, body)
                return str((answer.get("run") or {}).get("id") or "")
            except RuntimeRejected as exc:
                late = asyncio.get_running_loop().time() > deadline
                if cursor_code(exc) != "agent_busy" or late:
                    raise
            await asyncio.sleep(backoff.next_delay())

    async def _agent(self, agent_id: str) -> dict[str, Any] | None:
        try:
            return await self._client.get_agent(agent_id)
        except RuntimeRejected as exc:
            if exc.extra.get("http_status") == 404:
                return None
            raise

    async def _latest_run(self, agent_id: str) -> dict[str, Any] | None:
        agent = await self._agent(agent_id)
        run_id = (agent or {}).get("latestRunId")
        if not isinstance(run_id, str) or not run_id:
            return None
        self._latest[agent_id] = run_id
        return await self._client.get_run(agent_id, run_id)

    async def history(self, native_session_id: str) -> list[NativeEvent]:
        """The newest run replayed from its stream (Cursor keeps it for a retention window);
        after that only its result survives, reported with a gap (see ``history.py``)."""
        run = await self._latest_run(native_session_id)
        if run is None:
            return []
        last_seen = self._streams.last_ids.get(str(run["id"]))
        return await replay_run(self._client, native_session_id, run, last_seen)

    async def user_inputs(self, native_session_id: str) -> list[str]:
        """The prompts Cursor holds for the agent (v0 conversation), oldest first, without the
        instructions Corral put before the first one."""
        agent = await self._agent(native_session_id)
        if agent is None:
            return []
        conversation = await self._client.conversation(native_session_id)
        texts = [
            str(m.get("text") or "")
            for m in conversation.get("messages") or []
            if isinstance(m, dict) and m.get("type") == "user_message"
        ]
        prefix = str((agent.get("metadata") or {}).get(PREFIX_KEY) or "0")
        if texts and prefix.isdigit():
            texts[0] = texts[0][int(prefix) :]
        return texts

    async def status(self, native_session_id: str) -> str:
        run = await self._latest_run(native_session_id)
        return "busy" if run is not None and run.get("status") in _ACTIVE else "idle"

    async def cancel(self, native_session_id: str) -> None:
        run_id = self._latest.get(native_session_id)
        if run_id is None:
            run = await self._latest_run(native_session_id)
            run_id = str(run["id"]) if run is not None else None
        if run_id is None:
            return
        try:
            await self._client.cancel_run(native_session_id, run_id)
        except RuntimeRejected as exc:
            if cursor_code(exc) != "run_not_cancellable":  # already over: nothing to stop
                raise

    def mapper(self) -> EventMapper:
        return CursorMapper()

    async def aclose(self) -> None:
        await self._streams.aclose()
        await self._client.aclose()
