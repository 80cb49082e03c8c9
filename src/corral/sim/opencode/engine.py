"""Turn execution: one prompt in, OpenCode's exact sequence of bus events out.

A turn is a loop of steps (see :mod:`step`): each step is one assistant message and one
upstream call; a step that ends in tool calls is followed by another that sees the
results. The order below is what OpenCode 1.18.33 was recorded doing:

* prompt: ``session.updated`` (agent/model), user ``message.updated`` and its parts,
  ``session.updated``;
* each loop pass: ``session.status busy``; stop if the last step did not end in tool
  calls; else a new assistant ``message.updated``, the diff summary trio
  (``session.updated``, ``session.diff``, user ``message.updated``) and the step;
* normal end: ``session.status idle``, ``session.idle``, then the summary trio again;
* a rejected permission ends the loop before the next ``busy``;
* abort or upstream error: ``session.error``, idle, ``session.idle``, *then* the final
  assistant ``message.updated`` carrying ``info.error``, then idle again. Clients that stop
  at the first ``session.idle`` miss that last message; the simulator must keep the trap.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx

from corral.sim.opencode import history, llm, upstream
from corral.sim.opencode.bus import Bus
from corral.sim.opencode.config import SimConfig
from corral.sim.opencode.ids import ascending, now_ms
from corral.sim.opencode.permissions import Permissions
from corral.sim.opencode.step import Step, StepRunner, TurnError
from corral.sim.opencode.store import Json, MessageRecord, SessionRecord, Store, zero_tokens
from corral.sim.opencode.tools import tool_specs

__all__ = ["Engine"]

_ABORTED = {"name": "MessageAbortedError", "data": {"message": "Aborted"}}
# Plugin ids announced by the first prompt of a 1.18.33 process (a representative subset).
_BURST_PLUGINS = (
    "core/config-reference",
    "agent",
    "command",
    "skill",
    "models-dev",
    "config-agent",
    "config-command",
    "config-skill",
    "anthropic",
    "openai-compatible",
    "openai",
    "dynamic-provider",
    "config-plugin",
    "config-provider",
    "variant",
)


class Engine:
    def __init__(self, config: SimConfig, store: Store, bus: Bus, permissions: Permissions) -> None:
        self.config = config
        self.store = store
        self.bus = bus
        self.permissions = permissions
        self.steps = StepRunner(config, store, permissions, self._http, self._set_status)
        self._client: httpx.AsyncClient | None = None
        self._turns: dict[str, asyncio.Task[MessageRecord | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._busy: dict[str, Json] = {}  # sessionID -> SessionStatus while not idle
        self._background: set[asyncio.Task[None]] = set()
        self._burst_done = False

    # -- public surface used by the routes ----------------------------------------
    def status(self) -> dict[str, Json]:
        return dict(self._busy)

    def start(self, session: SessionRecord, body: Json) -> asyncio.Task[MessageRecord | None]:
        """Run a prompt in the background; the returned task ends with the turn."""
        task = asyncio.create_task(self._run(session, body), name=f"opencode-turn-{session.id}")
        self._turns[session.id] = task
        task.add_done_callback(lambda t: self._forget(session.id, t))
        return task

    def abort(self, session_id: str) -> None:
        task = self._turns.get(session_id)
        if task is not None and not task.done():
            task.cancel()

    async def close(self) -> None:
        for task in [*self._turns.values(), *self._background]:
            task.cancel()
        if self._client is not None:
            await self._client.aclose()

    def _forget(self, session_id: str, task: asyncio.Task[Any]) -> None:
        if self._turns.get(session_id) is task:
            del self._turns[session_id]

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            timeout = httpx.Timeout(self.config.llm_timeout, connect=5.0)
            self._client = httpx.AsyncClient(timeout=timeout)
        return self._client

    # -- the turn ------------------------------------------------------------------
    async def _run(self, session: SessionRecord, body: Json) -> MessageRecord | None:
        lock = self._locks.setdefault(session.id, asyncio.Lock())
        try:
            async with lock:  # a prompt sent mid-turn waits for the running one
                return await self._turn(session, body)
        except asyncio.CancelledError:
            return None  # aborted while still queued: nothing was published yet

    async def _turn(self, session: SessionRecord, body: Json) -> MessageRecord | None:
        agent = str(body.get("agent") or "build")
        model = body.get("model") or {
            "providerID": self.config.provider_id,
            "modelID": self.config.model_id,
        }
        self.store.set_model(session, agent, model)
        user = self._user_message(session, body, agent, model)
        self.store.touch(session)
        first_prompt = len(session.messages) == 1
        step: Step | None = None
        try:
            while not (step is not None and step.blocked):
                self._set_status(session.id, {"type": "busy"})
                if step is not None and step.finish != "tool-calls":
                    break
                step = self._assistant_message(session, user)
                self.store.summarize(session, user)
                if first_prompt:
                    first_prompt = False
                    self._maybe_title(session, body)
                self._startup_burst()  # providers load when the model is first used
                await self.steps.run(session, step, self._request(session, step, body))
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # the abort is handled here; the task ends normally
            if step is not None and step.retrying:
                return self._stop_retrying(session, step)
            return self._fail(session, step, _ABORTED)
        except TurnError as exc:
            return self._fail(session, step, exc.error)
        except Exception as exc:  # a simulator bug must end the turn, never hang a test
            return self._fail(
                session, step, {"name": "UnknownError", "data": {"message": repr(exc)}}
            )
        self._idle(session.id)
        if not self.config.silence:
            self.store.summarize(session, user)
        return step.message if step is not None else None

    def _startup_burst(self) -> None:
        # The real server loads its plugins and model catalog on the first model call and
        # announces them on the global bus: ~50 frames that carry no sessionID at all.
        if self._burst_done or not self.config.startup_burst:
            return
        self._burst_done = True
        for name in _BURST_PLUGINS:
            self.bus.publish("plugin.added", {"id": name})
        for type_ in ("catalog.updated", "reference.updated", "integration.updated"):
            self.bus.publish(type_, {})

    def _user_message(
        self, session: SessionRecord, body: Json, agent: str, model: Json
    ) -> MessageRecord:
        info: Json = {
            "id": body.get("messageID") or ascending("msg"),
            "role": "user",
            "sessionID": session.id,
            "time": {"created": now_ms()},
            "agent": agent,
            "model": {"providerID": model["providerID"], "modelID": model["modelID"]},
        }
        if body.get("system"):
            info["system"] = body["system"]
        if body.get("tools"):
            info["tools"] = body["tools"]
        record = self.store.add_message(session, info)
        for part in body["parts"]:
            fields = {k: v for k, v in part.items() if k not in ("id", "type")}
            self.store.new_part(record, part["type"], **fields)
        return record

    def _assistant_message(self, session: SessionRecord, user: MessageRecord) -> Step:
        model = user.info["model"]
        info: Json = {
            "id": ascending("msg"),
            "parentID": user.info["id"],
            "role": "assistant",
            "mode": user.info["agent"],
            "agent": user.info["agent"],
            # Outside a git repository the worktree root is "/".
            "path": {"cwd": self.config.directory, "root": "/"},
            "cost": 0,
            "tokens": zero_tokens(),
            "modelID": model["modelID"],
            "providerID": model["providerID"],
            "time": {"created": now_ms()},
            "sessionID": session.id,
        }
        return Step(self.store.add_message(session, info))

    def _request(self, session: SessionRecord, step: Step, body: Json) -> Json:
        return {
            "model": step.message.info["modelID"],
            "messages": history.conversation(session, body.get("system"), step.message),
            "tools": tool_specs(body.get("tools")),
            "tool_choice": "auto",
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    # -- endings -------------------------------------------------------------------------
    def _set_status(self, session_id: str, status: Json) -> None:
        if status["type"] == "idle":
            self._busy.pop(session_id, None)
        else:
            self._busy[session_id] = status
        self.bus.publish("session.status", {"sessionID": session_id, "status": status})

    def _idle(self, session_id: str) -> None:
        self._busy.pop(session_id, None)
        if self.config.silence:
            return  # the quirk: no end-of-turn frame at all, clients must time out
        self._set_status(session_id, {"type": "idle"})
        self.bus.publish("session.idle", {"sessionID": session_id})

    def _fail(self, session: SessionRecord, step: Step | None, error: Json) -> MessageRecord | None:
        self.bus.publish("session.error", {"sessionID": session.id, "error": error})
        self._idle(session.id)
        if step is None:
            return None
        for task in step.running:
            task.cancel()  # a tool still waiting (e.g. on a permission) dies with the turn
        for part in step.tools.values():
            if part["state"]["status"] in ("pending", "running"):
                self.steps.tool_error(part, "Tool execution aborted", {"interrupted": True})
        self.steps.close_text(step)
        info = step.message.info
        info["time"].setdefault("completed", now_ms())
        info["error"] = error
        if not self.config.silence:
            self.store.update_message(step.message)
        self._idle(session.id)
        return step.message

    def _stop_retrying(self, session: SessionRecord, step: Step) -> MessageRecord:
        """Abort while waiting to retry: no ``session.error``, the message just completes."""
        step.message.info["time"]["completed"] = now_ms()
        if not self.config.silence:
            self.store.update_message(step.message)
        self._idle(session.id)
        return step.message

    # -- titles ----------------------------------------------------------------------------
    def _maybe_title(self, session: SessionRecord, body: Json) -> None:
        if not self.config.generate_titles or not session.info["title"].startswith("New session"):
            return
        task = asyncio.create_task(self._title(session, body))
        self._background.add(task)  # keep a reference, or the task may be collected
        task.add_done_callback(self._background.discard)

    async def _title(self, session: SessionRecord, body: Json) -> None:
        """Rename a default-titled session from a tool-less upstream call, like OpenCode."""
        text = " ".join(p.get("text", "") for p in body["parts"] if p.get("type") == "text")
        request = {
            "model": self.config.model_id,
            "messages": [
                {"role": "system", "content": history.TITLE_PROMPT},
                {"role": "user", "content": text},
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        title = ""
        with contextlib.suppress(upstream.UpstreamHTTPError, upstream.UpstreamUnreachable):
            async for event in llm.chat(self.config, self._http, request):
                if isinstance(event, upstream.TextDelta):
                    title += event.text
        if title.strip() and session.id in self.store.sessions:
            session.info["title"] = title.strip()[:100]
            self.store.touch(session)
