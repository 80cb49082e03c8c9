"""One agent run of the simulated gateway: model calls, tools, approvals, abort, failure.

The event sequence mirrors the traces recorded from openclaw 2026.9.6
(``tests/fixtures/openclaw``): ``chat`` status/delta/final (deltas coalesced), ``agent``
lifecycle/assistant/tool/usage streams, ``session.message`` transcript rows (the toolResult row
is written but, as on the real gateway, not pushed live), exec approvals that need an
approver connection, retried model failures ending in two ``chat`` error frames, and an
abort that injects the partial assistant text as a gateway-authored row.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from corral.sim.openclaw.llm import Completion, UpstreamError, stream_completion
from corral.sim.openclaw.state import GatewayState, Run, Session, now_ms
from corral.sim.openclaw.tools import execute


class RunContext:
    def __init__(self, state: GatewayState, session: Session, run: Run) -> None:
        self.state, self.session, self.run = state, session, run
        self.config = state.config
        self.pending = ""  # coalesced chat delta text not sent yet
        self.last_delta = 0.0

    def base(self) -> dict[str, Any]:
        return {
            "runId": self.run.run_id,
            "sessionKey": self.session.key,
            "agentId": self.session.agent_id,
        }

    def chat(self, state: str, **extra: Any) -> None:
        payload = {**self.base(), "seq": self.run.next_seq(), "state": state, **extra}
        self.state.broadcast("chat", payload)

    def agent(self, stream: str, data: dict[str, Any], to_tools_only: bool = False) -> None:
        payload = {
            **self.base(),
            "stream": stream,
            "data": data,
            "seq": self.run.next_seq(),
            "ts": now_ms(),
            "isHeartbeat": False,
        }
        only = (lambda c: "tool-events" in c.caps) if to_tools_only else None
        self.state.broadcast("agent", payload, only)

    def row(self, row: dict[str, Any]) -> dict[str, Any]:
        stored = self.session.append(row, self.run.run_id)
        return stored

    def publish(self, row: dict[str, Any]) -> None:
        meta = row["__openclaw"]
        payload = {
            "sessionKey": self.session.key,
            "agentId": self.session.agent_id,
            "message": row,
            "messageId": meta["id"],
            "messageSeq": meta["seq"],
            "sessionId": self.session.session_id,
        }
        self.state.to_subscribers(self.session.key, "session.message", payload)

    def assistant_message(self, text: str) -> dict[str, Any]:
        return {
            "role": "assistant",
            "content": [{"type": "text", "text": text}],
            "timestamp": now_ms(),
        }

    def delta(self, text: str) -> None:
        self.run.partial += text
        self.pending += text
        if time.monotonic() - self.last_delta >= self.config.delta_throttle_s:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            message = self.assistant_message(self.run.partial)
            self.chat("delta", deltaText=self.pending, message=message)
            self.pending, self.last_delta = "", time.monotonic()


def _usage(config: Any, completion: Completion) -> dict[str, Any]:
    cost_in = completion.input_tokens * config.price_input / 1e6
    cost_out = completion.output_tokens * config.price_output / 1e6
    return {
        "input": completion.input_tokens,
        "output": completion.output_tokens,
        "totalTokens": completion.input_tokens + completion.output_tokens,
        "cacheRead": 0,
        "cacheWrite": 0,
        "cost": {
            "input": cost_in,
            "output": cost_out,
            "cacheRead": 0,
            "cacheWrite": 0,
            "total": cost_in + cost_out,
        },
    }


async def run_turn(state: GatewayState, session: Session, run: Run) -> None:
    ctx = RunContext(state, session, run)
    user = ctx.row(
        {
            "role": "user",
            "content": run.text,
            "timestamp": now_ms(),
            "idempotencyKey": f"{run.run_id}:user",
        }
    )
    ctx.publish(user)
    try:
        ctx.chat("status", phase="preparing_context")
        ctx.agent("lifecycle", {"phase": "start", "startedAt": now_ms()})
        await _loop(ctx)
    except asyncio.CancelledError:
        _aborted(ctx)
    finally:
        session.run = None
        session.last_run_id = run.run_id
        if session.queued:
            start_next(state, session)


async def _loop(ctx: RunContext) -> None:
    config = ctx.config
    while True:
        completion = await _model_call(ctx)
        if completion is None:
            return
        usage = _usage(config, completion)
        ctx.agent("usage", {"outputTokens": completion.output_tokens})
        common = {
            "api": "openai-completions",
            "provider": config.provider,
            "model": config.model,
            "usage": usage,
            "timestamp": now_ms(),
            "responseId": completion.response_id,
        }
        if completion.tool_calls:
            content = [{"type": "toolCall", **call} for call in completion.tool_calls]
            ctx.publish(
                ctx.row(
                    {"role": "assistant", "content": content, **common, "stopReason": "toolUse"}
                )
            )
            for call in completion.tool_calls:
                await _tool(ctx, call)
            continue
        ctx.flush()
        row = ctx.row(
            {
                "role": "assistant",
                "content": [{"type": "text", "text": completion.text}],
                **common,
                "stopReason": "stop",
            }
        )
        ctx.publish(row)
        ctx.agent(
            "lifecycle",
            {"phase": "end", "stopReason": "stop", "aborted": False, "endedAt": now_ms()},
        )
        ctx.chat("final", stopReason="stop", message=ctx.assistant_message(completion.text))
        ctx.session.aborted_last_run = False
        return


async def _model_call(ctx: RunContext) -> Completion | None:
    config = ctx.config
    failure: UpstreamError | None = None
    for attempt in range(config.model_retries + 1):
        if attempt:
            await asyncio.sleep(config.retry_delay_s)
            ctx.chat("status", phase="starting_model")
        ctx.agent(
            "lifecycle", {"phase": "model", "provider": config.provider, "model": config.model}
        )
        completion = Completion()
        ctx.run.partial = ""
        try:
            session = ctx.session
            runtime_line = (
                f"Runtime: agent={session.agent_id} | session={session.key} | "
                f"model={session.model} | channel=webchat"
            )
            async for text in stream_completion(
                config, session.transcript, completion, runtime_line
            ):
                ctx.agent("assistant", {"text": ctx.run.partial + text, "delta": text})
                ctx.delta(text)
            return completion
        except UpstreamError as exc:
            failure = exc
            ctx.agent(
                "lifecycle",
                {
                    "phase": "finishing",
                    "error": _error_text(config, exc),
                    "aborted": False,
                    "livenessState": "blocked",
                },
            )
    assert failure is not None
    _failed(ctx, failure)
    return None


def _error_text(config: Any, exc: UpstreamError) -> str:
    http = f", HTTP {exc.status}" if exc.status else ""
    return (
        f"\u26a0\ufe0f {config.provider}/{config.model} request failed (request timed out{http})."
        " This is usually temporary \u2014 try again shortly."
    )


def _failed(ctx: RunContext, exc: UpstreamError) -> None:
    config, text = ctx.config, _error_text(ctx.config, exc)
    detail = {
        "provider": config.provider,
        "model": config.model,
        "failoverReason": "timeout",
        "providerRuntimeFailureKind": "timeout",
    }
    ctx.agent("lifecycle", {"phase": "error", "error": text, "aborted": False, "endedAt": now_ms()})
    ctx.chat("error", errorMessage=text, errorKind="timeout", errorDetail=detail)
    # Quirk: a second, agent-less error frame for the same run, with its own seq restarting at 1.
    second = {
        "runId": ctx.run.run_id,
        "sessionKey": ctx.session.key,
        "seq": 1,
        "state": "error",
        "errorMessage": f"\u26a0\ufe0f Agent failed before reply: {text}",
    }
    ctx.state.broadcast("chat", second)
    notice = f"\u26a0\ufe0f LLM request failed (provider internal error, HTTP {exc.status})."
    zero = _usage(config, Completion())
    ctx.publish(
        ctx.row(
            {
                "role": "assistant",
                "content": [{"type": "text", "text": notice}],
                "api": "openai-completions",
                "provider": config.provider,
                "model": config.model,
                "usage": zero,
                "stopReason": "error",
                "timestamp": now_ms(),
                "idempotencyKey": f"{ctx.run.run_id}:terminal-error",
            }
        )
    )


def _aborted(ctx: RunContext) -> None:
    partial = ctx.run.partial
    ctx.chat("aborted", stopReason="rpc", message=ctx.assistant_message(partial))
    ctx.agent(
        "lifecycle",
        {
            "phase": "end",
            "status": "cancelled",
            "aborted": True,
            "stopReason": "rpc",
            "endedAt": now_ms(),
        },
    )
    ctx.session.aborted_last_run = True
    if partial:
        row = ctx.assistant_message(partial)
        row.update(
            stopReason="stop",
            api="openai-responses",
            provider="openclaw",
            model="gateway-injected",
            usage=_usage(ctx.config, Completion()),
            idempotencyKey=f"{ctx.run.run_id}:assistant",
            openclawAbort={"aborted": True, "origin": "rpc", "runId": ctx.run.run_id},
        )
        ctx.publish(ctx.row(row))


async def _tool(ctx: RunContext, call: dict[str, Any]) -> None:
    call_id, name, args = call["id"], call["name"], call["arguments"]
    ctx.agent("tool", {"phase": "start", "name": name, "toolCallId": call_id, "args": args}, True)
    output, is_error = await execute(ctx, call_id, name, args)
    result = {"content": [{"type": "text", "text": output}]}
    ctx.agent(
        "tool",
        {
            "phase": "result",
            "name": name,
            "toolCallId": call_id,
            "isError": is_error,
            "result": result,
        },
        True,
    )
    # Written to the transcript, but not pushed as session.message (as observed).
    ctx.row(
        {
            "role": "toolResult",
            "toolCallId": call_id,
            "toolName": name,
            "content": result["content"],
            "isError": is_error,
            "timestamp": now_ms(),
        }
    )


def start_next(state: GatewayState, session: Session) -> None:
    """Start the oldest queued run (the session's queue mode is followup)."""
    if session.run is not None or not session.queued:
        return
    run = session.queued.pop(0)
    session.run = run
    run.task = asyncio.create_task(run_turn(state, session, run), name=f"openclaw-sim-{run.run_id}")
