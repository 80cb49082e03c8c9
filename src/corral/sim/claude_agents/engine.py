"""The simulated agent loop: user events in, Managed Agents events out.

One turn (``user.message`` to ``session.status_idle``) is driven by one task per session:

* ``session.status_running``, then the processed copy of each consumed user event;
* per model call: ``span.model_request_start``, (``event_start``/``event_delta`` previews to
  streams that asked), ``agent.message``, ``span.model_request_end`` with ``model_usage``;
* per tool call: ``agent.tool_use`` (``evaluated_permission`` ``allow`` runs it at once and
  emits ``agent.tool_result``; ``ask`` blocks), or ``agent.custom_tool_use`` (blocks);
* blocked: ``session.status_idle {stop_reason: requires_action, event_ids}``; the answers
  (``user.tool_confirmation``/``user.custom_tool_result``) resume it once all are in, and a
  partial answer re-emits the idle with the remaining ids;
* the end: ``session.usage`` (cumulative, with ``list_cost``) and ``session.status_idle
  {end_turn}``; a failed model call that will not be retried: ``session.error`` with
  ``retry_status: exhausted`` and ``stop_reason: retries_exhausted``;
* ``user.interrupt``: the running task is cancelled, an open span is closed, and the session
  goes idle with ``end_turn`` (the service documents no dedicated stop reason).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx

from corral.sim.claude_agents import tools as toolset
from corral.sim.claude_agents.config import SimConfig
from corral.sim.claude_agents.ids import new_id, now_iso
from corral.sim.claude_agents.store import SessionRecord
from corral.sim.claude_agents.turns import (
    Run,
    apply_answers,
    emit,
    processed,
    run_tools,
    text_of,
    tool_uses,
    validate,
)

# The OpenAI-compatible upstream call is the same for every simulator: reuse OpenCode's.
from corral.sim.opencode import upstream

Json = dict[str, Any]

__all__ = ["Engine"]


class Engine:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.files = dict(config.files)
        self._runs: dict[str, Run] = {}
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _run(self, session: SessionRecord) -> Run:
        run = self._runs.get(session.id)
        if run is None:
            run = self._runs[session.id] = Run()
            if session.agent.get("system"):
                run.conversation.append({"role": "system", "content": session.agent["system"]})
        return run

    def _status(self, session: SessionRecord, status: str, **fields: Any) -> None:
        session.info["status"] = "rescheduling" if status == "rescheduled" else status
        session.info["updated_at"] = now_iso()
        emit(session, f"session.status_{status}", **fields)

    # -- user events ------------------------------------------------------------------------
    def submit(self, session: SessionRecord, events: list[Json]) -> list[Json]:
        """Validate, queue and act on client events; returns them as the API echoes them."""
        run = self._run(session)
        for event in events:
            validate(run, event)
        sent: list[Json] = []
        for raw in events:
            event = {"id": new_id("sevt"), **raw, "processed_at": None}
            session.emit(dict(event))  # the queued copy
            sent.append(event)
            kind = event["type"]
            if kind == "user.message":
                run.inbox.append(event)
                if not run.busy and not run.pending:
                    self._start(session, run)
            elif kind == "user.interrupt":
                self._spawn(self._interrupt(session, run, event))
            elif kind in ("user.tool_confirmation", "user.custom_tool_result"):
                target = event.get("tool_use_id") or event.get("custom_tool_use_id")
                run.answers[str(target)] = event
                if all(pid in run.answers for pid in run.pending):
                    self._start(session, run)
                else:
                    processed(session, event)
                    remaining = [pid for pid in run.pending if pid not in run.answers]
                    self._idle(session, {"type": "requires_action", "event_ids": remaining})
            else:
                processed(session, event)
        return sent

    def _idle(self, session: SessionRecord, stop_reason: Json) -> None:
        self._status(session, "idle", stop_reason=stop_reason, stop_details=None)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start(self, session: SessionRecord, run: Run) -> None:
        run.task = asyncio.ensure_future(self._drive(session, run))

    async def _interrupt(self, session: SessionRecord, run: Run, event: Json) -> None:
        was_active = run.busy or bool(run.pending)
        if run.task is not None and not run.task.done():
            run.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run.task
        run.pending.clear()
        run.answers.clear()
        run.inbox.clear()
        processed(session, event)
        if was_active:
            self._idle(session, {"type": "end_turn"})

    # -- the loop ---------------------------------------------------------------------------
    async def _drive(self, session: SessionRecord, run: Run) -> None:
        self._status(session, "running")
        try:
            apply_answers(session, run, self.files)
            while True:
                while run.inbox:
                    message = run.inbox.pop(0)
                    processed(session, message)
                    run.conversation.append(
                        {"role": "user", "content": text_of(message["content"])}
                    )
                outcome = await self._step(session, run)
                if outcome == "blocked":
                    self._idle(session, {"type": "requires_action", "event_ids": list(run.pending)})
                    return
                if outcome == "failed":
                    self._usage(session, run)
                    self._idle(session, {"type": "retries_exhausted"})
                    return
                if outcome == "done" and not run.inbox:
                    self._usage(session, run)
                    self._idle(session, {"type": "end_turn"})
                    return
        except asyncio.CancelledError:
            if run.open_span is not None:
                self._span_end(session, run, {}, is_error=False)
            raise

    async def _step(self, session: SessionRecord, run: Run) -> str:
        agent_tools = {t.name: t for t in toolset.resolve_tools(session.agent.get("tools") or [])}
        body: Json = {
            "model": self.config.llm_model,
            "messages": run.conversation,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if agent_tools:
            body["tools"] = toolset.openai_tools(list(agent_tools.values()))
        for attempt in range(self.config.max_retries + 1):
            run.open_span = emit(session, "span.model_request_start")["id"]
            message_id, text, calls, usage = new_id("sevt"), "", [], {}
            try:
                async for event in upstream.stream_chat(
                    self._http(), f"{self.config.llm_url.rstrip('/')}/v1/chat/completions",
                    self.config.llm_api_key, body,
                ):  # fmt: skip
                    if isinstance(event, upstream.TextDelta) and event.text:
                        self._preview(session, message_id, bool(text), event.text)
                        text += event.text
                    elif isinstance(event, upstream.ToolCall):
                        calls.append(event)
                    elif isinstance(event, upstream.Finish):
                        usage = event.usage
            except upstream.UpstreamHTTPError as exc:
                failure: tuple[str, str, bool] | None = (
                    _error_type(exc.status),
                    exc.message,
                    exc.retryable,
                )
            except upstream.UpstreamUnreachable as exc:
                failure = ("model_request_failed_error", str(exc), True)
            except upstream.UpstreamBroken as exc:
                failure = ("model_request_failed_error", str(exc), False)
            else:
                failure = None
            if failure is None:
                if text:
                    content = [{"type": "text", "text": text}]
                    emit(session, "agent.message", id=message_id, content=content)
                # Tool uses are produced inside the model request; they run after it ends.
                runnable = tool_uses(session, run, text, calls, agent_tools)
                self._span_end(session, run, usage, is_error=False)
                if not calls:
                    return "done"
                run_tools(session, run, runnable, self.files)
                return "blocked" if run.pending else "continue"
            self._span_end(session, run, {}, is_error=True)
            kind, message, retryable = failure
            if retryable and attempt < self.config.max_retries:
                self._session_error(session, kind, message, "retrying")
                self._status(session, "rescheduled")
                await asyncio.sleep(self.config.retry_delay * (2**attempt))
                self._status(session, "running")
                continue
            self._session_error(session, kind, message, "exhausted")
            return "failed"
        return "failed"

    def _preview(self, session: SessionRecord, message_id: str, started: bool, text: str) -> None:
        if not started:
            start = {"type": "event_start", "event": {"type": "agent.message", "id": message_id}}
            session.preview(start, "agent.message")
        delta = {
            "type": "event_delta",
            "event_id": message_id,
            "delta": {
                "type": "content_delta",
                "content": {"type": "text", "text": text},
                "index": 0,
            },
        }
        session.preview(delta, "agent.message")

    def _span_end(self, session: SessionRecord, run: Run, usage: Json, *, is_error: bool) -> None:
        model_usage = {
            "input_tokens": int(usage.get("prompt_tokens") or 0),
            "output_tokens": int(usage.get("completion_tokens") or 0),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        run.input_tokens += model_usage["input_tokens"]
        run.output_tokens += model_usage["output_tokens"]
        emit(
            session,
            "span.model_request_end",
            model_request_start_id=run.open_span,
            is_error=is_error,
            model_usage=model_usage,
        )
        run.open_span = None

    def _session_error(self, session: SessionRecord, kind: str, message: str, retry: str) -> None:
        error = {"type": kind, "message": message, "retry_status": {"type": retry}}
        emit(session, "session.error", error=error)

    def _usage(self, session: SessionRecord, run: Run) -> None:
        price = self.config.price
        cents = (run.input_tokens * price.input + run.output_tokens * price.output) / 10_000
        usage = {
            "input_tokens": run.input_tokens,
            "output_tokens": run.output_tokens,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "list_cost": {"amount": str(round(cents)), "currency": "USD"},
        }
        session.info["usage"] = usage
        emit(session, "session.usage", usage=usage, budget=session.info.get("budget"))

    # -- lifecycle ----------------------------------------------------------------------------
    def forget(self, session: SessionRecord) -> None:
        run = self._runs.pop(session.id, None)
        if run is not None and run.task is not None:
            run.task.cancel()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.config.llm_timeout))
        return self._client

    async def close(self) -> None:
        for run in self._runs.values():
            if run.task is not None:
                run.task.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()


def _error_type(status: int) -> str:
    if status == 429:
        return "model_rate_limited_error"
    if status in (503, 529):
        return "model_overloaded_error"
    return "model_request_failed_error"
