"""One step of a turn: an upstream streaming call turned into parts of one assistant message.

Mapping (as observed on OpenCode 1.18.33): the upstream answering 2xx opens a
``step-start`` part; the first content chunk opens a ``text`` part with empty text and
every non-empty chunk becomes a ``message.part.delta``; a streamed tool call is a ``tool``
part that goes ``pending`` -> ``running`` (with input) -> ``completed`` or ``error``; the
end of the stream re-publishes the text part with ``time.end``, then a ``step-finish``
part with tokens and cost, then the assistant message twice (finish, cost, tokens).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx

from corral.sim.opencode import llm, upstream
from corral.sim.opencode.config import SimConfig
from corral.sim.opencode.ids import now_ms
from corral.sim.opencode.permissions import Denied, Permissions, Rejected
from corral.sim.opencode.store import Json, MessageRecord, SessionRecord, Store
from corral.sim.opencode.tools import permission_request, run_tool

__all__ = ["Step", "StepRunner", "TurnError"]

StatusSink = Callable[[str, Json], None]


class TurnError(Exception):
    """Ends a turn with ``session.error``; ``error`` is OpenCode's ``{name, data}``."""

    def __init__(self, error: Json) -> None:
        super().__init__(error["name"])
        self.error = error


@dataclass
class Step:
    """Mutable state of one assistant message while its upstream stream is read."""

    message: MessageRecord
    text: Json | None = None
    reasoning: Json | None = None
    tools: dict[str, Json] = field(default_factory=dict)  # callID -> tool part
    running: list[asyncio.Task[None]] = field(default_factory=list)
    blocked: bool = False  # a rejected permission stops the turn after this step
    retrying: bool = False  # waiting out a retry backoff (an abort then ends quietly)

    @property
    def finish(self) -> str | None:
        value = self.message.info.get("finish")
        return value if isinstance(value, str) else None


class StepRunner:
    def __init__(
        self,
        config: SimConfig,
        store: Store,
        permissions: Permissions,
        http: Callable[[], httpx.AsyncClient],
        set_status: StatusSink,
    ) -> None:
        self.config = config
        self.store = store
        self.permissions = permissions
        self._http = http
        self._set_status = set_status

    async def run(self, session: SessionRecord, step: Step, request: Json) -> None:
        finish = upstream.Finish("stop")
        async for event in self._stream_with_retry(session, step, request):
            if isinstance(event, upstream.Started):
                self.store.new_part(step.message, "step-start")
            elif isinstance(event, upstream.TextDelta):
                self._text_delta(step, event.text)
            elif isinstance(event, upstream.ReasoningDelta):
                self._reasoning_delta(step, event.text)
            elif isinstance(event, upstream.ToolCallStart):
                self._tool_pending(step, event)
            elif isinstance(event, upstream.ToolCall):
                self._tool_start(session, step, event)
            else:
                finish = event
        self.close_text(step)
        if step.running:
            await asyncio.gather(*step.running)
        self._finish(session, step, finish)

    async def _stream_with_retry(
        self, session: SessionRecord, step: Step, request: Json
    ) -> AsyncIterator[upstream.UpstreamEvent]:
        url = llm.chat_url(self.config)
        attempt = 0
        while True:
            # Every attempt announces "busy" again, which is why a real trace shows the
            # status twice in a row before the first step.
            self._set_status(session.id, {"type": "busy"})
            try:
                async for event in llm.chat(self.config, self._http, request):
                    yield event
                return
            except upstream.UpstreamHTTPError as exc:
                if not exc.retryable or attempt >= self.config.max_retries:
                    raise TurnError(_http_error(exc)) from exc
                message = exc.message
            except upstream.UpstreamBroken as exc:
                raise TurnError({"name": "UnknownError", "data": {"message": str(exc)}}) from exc
            except upstream.UpstreamUnreachable as exc:
                if attempt >= self.config.max_retries:
                    data = {"message": str(exc), "isRetryable": True, "metadata": {"url": url}}
                    raise TurnError({"name": "APIError", "data": data}) from exc
                message = str(exc)
            attempt += 1
            delay = self.config.retry_initial_delay * self.config.retry_factor ** (attempt - 1)
            status = {
                "type": "retry",
                "attempt": attempt,
                "message": message,
                "next": now_ms() + int(delay * 1000),
            }
            self._set_status(session.id, status)
            step.retrying = True
            await asyncio.sleep(delay)
            step.retrying = False

    # -- stream -> parts -------------------------------------------------------------
    def _text_delta(self, step: Step, text: str) -> None:
        if step.text is None:
            step.text = self.store.new_part(step.message, "text", text="", time={"start": now_ms()})
        if text:
            self.store.part_delta(step.text, text)

    def _reasoning_delta(self, step: Step, text: str) -> None:
        if step.reasoning is None:
            step.reasoning = self.store.new_part(
                step.message, "reasoning", text="", time={"start": now_ms()}
            )
        self.store.part_delta(step.reasoning, text)

    def close_text(self, step: Step) -> None:
        """Publish the finished text (and reasoning) with ``time.end``."""
        for part in (step.reasoning, step.text):
            if part is not None and "end" not in part["time"]:
                part["time"]["end"] = now_ms()
                self.store.update_part(part)

    def _tool_pending(self, step: Step, event: upstream.ToolCallStart) -> None:
        state = {"status": "pending", "input": {}, "raw": ""}
        part = self.store.new_part(
            step.message, "tool", tool=event.name, callID=event.call_id, state=state
        )
        step.tools[event.call_id] = part

    def _tool_start(self, session: SessionRecord, step: Step, event: upstream.ToolCall) -> None:
        part = step.tools.get(event.call_id)
        if part is None:  # a call that arrived whole, without a streamed start
            self._tool_pending(step, upstream.ToolCallStart(event.call_id, event.name))
            part = step.tools[event.call_id]
        part["state"] = {"status": "running", "input": event.arguments, "time": {"start": now_ms()}}
        self.store.update_part(part)
        # Tools run beside the stream, as in the AI SDK; the step waits for them at the end.
        step.running.append(asyncio.create_task(self._tool_run(session, step, part)))

    async def _tool_run(self, session: SessionRecord, step: Step, part: Json) -> None:
        state = part["state"]
        args = state["input"]
        tool_ref = {"messageID": part["messageID"], "callID": part["callID"]}
        ask = permission_request(part["tool"], args)
        try:
            await self.permissions.check(session.id, ask, tool_ref)
        except (Rejected, Denied) as exc:
            # A plain "reject" ends the turn; a reject with feedback lets the model go on.
            step.blocked = step.blocked or (isinstance(exc, Rejected) and not exc.feedback)
            self.tool_error(part, str(exc))
            return
        result = run_tool(part["tool"], args, self.config)
        if result.error is not None:
            self.tool_error(part, result.error)
            return
        if part["tool"] == "bash":
            # bash streams its output into the running part before completing.
            for output in ("", result.output):
                state["metadata"] = {"output": output}
                self.store.update_part(part)
        part["state"] = {
            "status": "completed",
            "input": args,
            "output": result.output,
            "metadata": result.metadata,
            "title": result.title,
            "time": {"start": state["time"]["start"], "end": now_ms()},
        }
        self.store.update_part(part)

    def tool_error(self, part: Json, error: str, metadata: Json | None = None) -> None:
        start = part["state"].get("time", {}).get("start", now_ms())
        state: Json = {
            "status": "error",
            "input": part["state"].get("input", {}),
            "error": error,
            "time": {"start": start, "end": now_ms()},
        }
        if metadata is not None:
            state["metadata"] = metadata
        part["state"] = state
        self.store.update_part(part)

    def _finish(self, session: SessionRecord, step: Step, finish: upstream.Finish) -> None:
        tokens, cost = self._usage(finish.usage)
        self.store.new_part(
            step.message, "step-finish", reason=finish.reason, tokens=tokens, cost=cost
        )
        info = step.message.info
        info["cost"] += cost
        info["tokens"] = tokens
        info["time"]["completed"] = now_ms()
        info["finish"] = finish.reason
        self.store.add_usage(session, cost, tokens)
        if not self.config.silence:
            # Published twice on the real server (step end, then message end).
            self.store.update_message(step.message)
            self.store.update_message(step.message)

    def _usage(self, usage: Json) -> tuple[Json, float]:
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        details = usage.get("completion_tokens_details") or {}
        reasoning = int(details.get("reasoning_tokens") or 0)
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        tokens: Json = {
            "total": int(usage.get("total_tokens") or prompt + completion),
            "input": max(0, prompt - cached),
            "output": max(0, completion - reasoning),
            "reasoning": reasoning,
            "cache": {"write": 0, "read": cached},
        }
        price = self.config.cost
        cost = (
            tokens["input"] * price.input
            + completion * price.output  # reasoning is billed as output
            + cached * price.cache_read
        ) / 1_000_000
        return tokens, round(cost, 12)


def _http_error(exc: upstream.UpstreamHTTPError) -> Json:
    data: Json = {
        "message": exc.message,
        "statusCode": exc.status,
        "isRetryable": exc.retryable,
        "responseHeaders": exc.headers,
        "responseBody": exc.body,
        "metadata": {"url": exc.url},
    }
    return {"name": "APIError", "data": data}
