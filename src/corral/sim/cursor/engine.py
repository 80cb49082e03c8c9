"""The cloud agent's loop: model calls to the upstream, tool calls, and the run's event log.

Each text delta is reported twice, as the real stream does: the simplified ``assistant``
frame and the raw ``interaction_update`` (``text-delta``) frame, each with its own id. The
run ends with ``result`` (status and final text) then ``done``. Conversation context: only the
current prompt is sent upstream (the mock LLM reacts to the last scripted user message, so
earlier prompts would replay their directives).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx

from corral.sim.cursor.config import SimConfig
from corral.sim.cursor.store import Agent, Run
from corral.sim.cursor.tools import TOOL_SPECS, run_tool
from corral.sim.opencode.upstream import (
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    UpstreamBroken,
    UpstreamHTTPError,
    UpstreamUnreachable,
    stream_chat,
)

__all__ = ["Engine"]

Json = dict[str, Any]


class Engine:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._http: httpx.AsyncClient | None = None

    def start(self, agent: Agent, run: Run) -> None:
        run.task = asyncio.create_task(self._execute(agent, run), name=f"cursor-sim-{run.id}")

    async def cancel(self, run: Run) -> None:
        task = run.task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._end(run, "CANCELLED")

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(self.config.llm_timeout))
        return self._http

    async def _execute(self, agent: Agent, run: Run) -> None:
        await asyncio.sleep(self.config.boot_delay_s)
        run.status = "RUNNING"
        run.emit("status", {"runId": run.id, "status": "RUNNING"})
        text: list[str] = []
        try:
            await self._steps(agent, run, text)
        except UpstreamHTTPError as exc:
            self._fail(run, "upstream_error", f"model request failed ({exc.status}): {exc.message}")
            return
        except (UpstreamUnreachable, UpstreamBroken) as exc:
            self._fail(run, "upstream_unavailable", str(exc) or "model unreachable")
            return
        run.emit(
            "interaction_update",
            {
                "type": "turn-ended",
                "usage": {**run.usage, "cacheReadTokens": 0, "cacheWriteTokens": 0},
            },
        )
        run.result = "".join(text)
        self._end(run, "FINISHED")

    async def _steps(self, agent: Agent, run: Run, text: list[str]) -> None:
        messages: list[Json] = [
            {"role": "system", "content": self.config.system_prompt},
            {"role": "user", "content": run.prompt},
        ]
        url = self.config.llm_url.rstrip("/") + "/v1/chat/completions"
        for _ in range(self.config.max_steps):
            body = {
                "model": self.config.llm_model,
                "messages": messages,
                "tools": TOOL_SPECS,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            calls: list[ToolCall] = []
            step_text: list[str] = []
            async for event in stream_chat(self._client(), url, self.config.llm_api_key, body):
                if isinstance(event, TextDelta) and event.text:
                    step_text.append(event.text)
                    run.emit("assistant", {"text": event.text})
                    run.emit("interaction_update", {"type": "text-delta", "text": event.text})
                elif isinstance(event, ReasoningDelta):
                    run.emit("thinking", {"text": event.text})
                    run.emit("interaction_update", {"type": "thinking-delta", "text": event.text})
                elif isinstance(event, ToolCall):
                    calls.append(event)
                elif isinstance(event, Finish):
                    run.usage["inputTokens"] += int(event.usage.get("prompt_tokens") or 0)
                    run.usage["outputTokens"] += int(event.usage.get("completion_tokens") or 0)
            text.extend(step_text)
            if not calls:
                return
            messages.append(
                {
                    "role": "assistant",
                    "content": "".join(step_text) or None,
                    "tool_calls": [
                        {
                            "id": c.call_id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                        }
                        for c in calls
                    ],
                }
            )
            for call in calls:
                base = {"callId": call.call_id, "name": call.name, "args": call.arguments}
                run.emit("tool_call", {**base, "status": "running"})
                result = run_tool(call.name, call.arguments, agent.files)
                run.emit("tool_call", {**base, "status": "completed", "result": result})
                messages.append(
                    {"role": "tool", "tool_call_id": call.call_id, "content": json.dumps(result)}
                )

    def _fail(self, run: Run, code: str, message: str) -> None:
        run.emit("error", {"code": code, "message": message})
        self._end(run, "ERROR", error={"code": code, "message": message})

    def _end(self, run: Run, status: str, *, error: Json | None = None) -> None:
        if run.finished_mono is not None:
            return
        run.finish(status, error=error)
        data: Json = {"runId": run.id, "status": status, "durationMs": run.duration_ms}
        if run.result is not None:
            data["text"] = run.result
        if error is not None:
            data["error"] = error
        run.emit("result", data)
        run.emit("done", {"runId": run.id})
