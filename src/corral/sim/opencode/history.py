"""Turn a session's stored messages into the chat-completions ``messages`` array.

OpenCode replays the whole conversation on every step: the system prompt, each user
message, each assistant message with its text and ``tool_calls``, and one ``tool``
message per finished tool part. The mock LLM depends on that shape (a ``tool`` message
after the scripting user message means "the tool already ran").
"""

from __future__ import annotations

import json
from typing import Any

from corral.sim.opencode.store import Json, MessageRecord, SessionRecord

__all__ = ["SYSTEM_PROMPT", "TITLE_PROMPT", "conversation"]

SYSTEM_PROMPT = (
    "You are opencode, an interactive CLI tool that helps users with software engineering "
    "tasks. Use the instructions below and the tools available to you to assist the user."
)
TITLE_PROMPT = (
    "You are a title generator. You output ONLY a thread title. Generate a brief title of "
    "at most 50 characters for the conversation that follows."
)


def conversation(
    session: SessionRecord, system: Any, current: MessageRecord | None = None
) -> list[Json]:
    """Messages for the next upstream call; ``current`` (the step being run) is skipped."""
    prompt = SYSTEM_PROMPT if not system else f"{SYSTEM_PROMPT}\n{system}"
    messages: list[Json] = [{"role": "system", "content": prompt}]
    for record in session.messages:
        if record is current:
            continue
        if record.info["role"] == "user":
            text = "\n".join(p["text"] for p in record.parts if p["type"] == "text")
            messages.append({"role": "user", "content": text})
        else:
            messages.extend(_assistant(record))
    return messages


def _assistant(record: MessageRecord) -> list[Json]:
    text = "".join(p["text"] for p in record.parts if p["type"] == "text")
    calls: list[Json] = []
    results: list[Json] = []
    for part in record.parts:
        if part["type"] != "tool" or part["state"]["status"] not in ("completed", "error"):
            continue  # unfinished calls (an abort) are not replayed
        state = part["state"]
        calls.append(
            {
                "id": part["callID"],
                "type": "function",
                "function": {"name": part["tool"], "arguments": json.dumps(state["input"])},
            }
        )
        output = state["output"] if state["status"] == "completed" else state["error"]
        results.append({"role": "tool", "tool_call_id": part["callID"], "content": output})
    if not text and not calls:
        return []  # an empty (e.g. aborted before any output) message is left out
    message: Json = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = calls
    return [message, *results]
