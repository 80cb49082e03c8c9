"""The mock LLM's script: directives parsed from the prompt and the reply they ask for. Pure.

The grammar is documented in :mod:`corral.sim.mock_llm`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

MODEL_ID = "mock-model"
TITLE_TEXT = "Scripted session"
_SLOW_TICK_S = 0.1  # target spacing of slow chunks
_TOOL_RESULT_PREVIEW = 80


_ERROR_CODES = {
    400: "bad_request",
    401: "invalid_api_key",
    403: "permission_denied",
    404: "not_found",
    409: "conflict",
    422: "unprocessable_entity",
    429: "rate_limit_exceeded",
}

# ---------------------------------------------------------------------------
# Script parsing
# ---------------------------------------------------------------------------

_DIRECTIVE_START = re.compile(r"\[\[(?:(tool|error|fail|slow|usage):|(cut)\]\])")
_TOOL_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_ERROR_BODY = re.compile(r"\s*(\d{3})\s*\]\]")
_SLOW_BODY = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*\]\]")
_USAGE_BODY = re.compile(r"\s*(\d+)\s*,\s*(\d+)\s*\]\]")
_CLOSE = re.compile(r"\s*\]\]")
_JSON = json.JSONDecoder()


@dataclass
class Script:
    """What one user message asks the mock to do."""

    text: str = ""  # prompt text without directive markup, whitespace collapsed
    tool: tuple[str, dict[str, Any]] | None = None
    error: int | None = None  # applies only with tools on chat, always on the other APIs
    slow: float | None = None
    has_directive: bool = False
    fail: int | None = None  # applies always, on every endpoint
    usage: tuple[int, int] | None = None  # reported (input, output) tokens
    cut: bool = False  # end a stream after its first content chunk, without a terminal event


def _parse_tool(text: str, pos: int) -> tuple[tuple[str, dict[str, Any]], int] | None:
    """Parse ``NAME [json]]]`` starting at ``pos``; return (tool, end) or None."""
    name_m = _TOOL_NAME.match(text, pos)
    if name_m is None:
        return None
    pos = name_m.end()
    args: dict[str, Any] = {}
    rest = text[pos:].lstrip()
    if rest.startswith("{"):
        start = len(text) - len(rest)
        try:
            value, end = _JSON.raw_decode(text, start)
        except json.JSONDecodeError:
            return None
        if not isinstance(value, dict):
            return None
        args, pos = value, end
    close = _CLOSE.match(text, pos)
    if close is None:
        return None
    return (name_m.group(0), args), close.end()


def parse_script(text: str) -> Script:
    """Extract directives from one message text; malformed markup stays as plain text."""
    script = Script()
    kept: list[str] = []
    pos = 0
    for m in _DIRECTIVE_START.finditer(text):
        if m.start() < pos:  # inside a directive already consumed
            continue
        kind, body = m.group(1) or m.group(2), m.end()
        end: int | None = None
        if kind == "cut":
            script.cut, end = True, body
        elif kind == "tool":
            parsed = _parse_tool(text, body)
            if parsed is not None:
                script.tool, end = parsed
        elif kind in ("error", "fail"):
            em = _ERROR_BODY.match(text, body)
            if em is not None:
                if kind == "error":
                    script.error = int(em.group(1))
                else:
                    script.fail = int(em.group(1))
                end = em.end()
        elif kind == "usage":
            um = _USAGE_BODY.match(text, body)
            if um is not None:
                script.usage, end = (int(um.group(1)), int(um.group(2))), um.end()
        else:
            sm = _SLOW_BODY.match(text, body)
            if sm is not None:
                script.slow, end = float(sm.group(1)), sm.end()
        if end is None:
            continue
        script.has_directive = True
        kept.append(text[pos : m.start()])
        pos = end
    kept.append(text[pos:])
    script.text = " ".join("".join(kept).split())
    return script


def content_text(content: Any, kinds: Collection[str] = ("text", "input_text")) -> str:
    """Text of a message ``content``: a string, or the parts of type ``kinds`` of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") in kinds
        ]
        return "\n".join(t for t in texts if isinstance(t, str))
    return ""


def _ends_a_turn(msg: Any) -> bool:
    """An assistant answer without tool calls closes an earlier turn."""
    return isinstance(msg, dict) and msg.get("role") == "assistant" and not msg.get("tool_calls")


def find_script(messages: Sequence[Any]) -> tuple[Script, int]:
    """Pick the scripting user message of the current turn; return its script and index.

    The current turn is everything after the last assistant answer that made no tool call:
    runtimes may add user messages of their own around the prompt (so the directive is looked
    for in all of them), but a directive from an earlier turn must not be replayed.
    """
    fallback: tuple[Script, int] = (Script(), -1)
    for index in range(len(messages) - 1, -1, -1):
        msg = messages[index]
        if _ends_a_turn(msg) and fallback[1] != -1:
            break
        if not isinstance(msg, dict) or msg.get("role") != "user":
            continue
        script = parse_script(content_text(msg.get("content")))
        if script.has_directive:
            return script, index
        if fallback[1] == -1:
            fallback = (script, index)
    return fallback


# ---------------------------------------------------------------------------
# Reply planning
# ---------------------------------------------------------------------------


@dataclass
class Reply:
    """The planned answer: text chunks or one tool call, plus pacing."""

    chunks: list[str] = field(default_factory=list)
    tool_call: tuple[str, str, list[str]] | None = None  # (call id, name, argument fragments)
    interval: float = 0.0  # seconds between chunks
    usage: tuple[int, int] | None = None  # ``[[usage:IN,OUT]]`` override
    cut: bool = False  # ``[[cut]]``: a stream ends after its first content chunk

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_call else "stop"

    @property
    def completion_tokens(self) -> int:
        return len(self.tool_call[2]) if self.tool_call else len(self.chunks)

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def token_counts(self, input_tokens: int) -> tuple[int, int]:
        """The (input, output) token counts to report: the override, else the counted ones."""
        return self.usage if self.usage is not None else (input_tokens, self.completion_tokens)


def split_words(text: str) -> list[str]:
    """Split so that ``"".join(result) == text`` and each piece holds one word."""
    return [p for p in re.split(r"(?<=\s)(?=\S)", text) if p]


def _slow_chunks(text: str, seconds: float) -> list[str]:
    words = split_words(text)
    wanted = min(len(text), max(len(words), math.ceil(seconds / _SLOW_TICK_S)))
    if wanted <= len(words) or not text:
        return words
    size = len(text) / wanted
    return [text[round(i * size) : round((i + 1) * size)] for i in range(wanted)]


def _split_arguments(arguments: str) -> list[str]:
    """Cut the JSON arguments into (up to) three fragments, like a streaming model."""
    if len(arguments) < 3:
        return [arguments]
    third = math.ceil(len(arguments) / 3)
    return [arguments[i : i + third] for i in range(0, len(arguments), third)]


def _text_reply(text: str, slow: float | None) -> Reply:
    if slow and slow > 0:
        chunks = _slow_chunks(text, slow)
        return Reply(chunks=chunks, interval=slow / max(len(chunks), 1))
    return Reply(chunks=split_words(text))


def plan(
    messages: Sequence[Any], *, has_tools: bool, error_needs_tools: bool = True
) -> Reply | int:
    """Decide the answer to a conversation: a :class:`Reply`, or a scripted error's status.

    ``messages`` are chat-shaped (``role``/``content``, assistant ``tool_calls``, ``tool``
    results); the other APIs translate their input to that shape first. ``[[error:...]]``
    needs ``tools`` unless ``error_needs_tools`` is False; ``[[fail:...]]`` always applies.
    """
    script, index = find_script(messages)
    if script.fail is not None:
        return script.fail
    if script.error is not None and (has_tools or not error_needs_tools):
        return script.error
    reply = _answer(script, index, messages, has_tools)
    reply.usage = script.usage
    reply.cut = script.cut
    return reply


def _answer(script: Script, index: int, messages: Sequence[Any], has_tools: bool) -> Reply:
    if script.tool is not None or script.error is not None:
        if not has_tools:
            return _text_reply(TITLE_TEXT, None)
        results = [
            m for m in messages[index + 1 :] if isinstance(m, dict) and m.get("role") == "tool"
        ]
        if results:
            preview = content_text(results[-1].get("content"))[:_TOOL_RESULT_PREVIEW]
            return _text_reply(f"Tool done: {preview}", script.slow)
        assert script.tool is not None
        name, args = script.tool
        arguments = json.dumps(args, separators=(",", ":"))
        digest = hashlib.sha256(f"{index}:{name}:{arguments}".encode()).hexdigest()
        return Reply(tool_call=(f"call_{digest[:24]}", name, _split_arguments(arguments)))

    return _text_reply(f"Echo: {script.text}", script.slow)


def plan_reply(body: dict[str, Any]) -> Reply | tuple[int, dict[str, Any]]:
    """Decide the answer for a chat request: a :class:`Reply` or (status, error body)."""
    planned = plan(body.get("messages") or [], has_tools=bool(body.get("tools")))
    if isinstance(planned, int):
        return planned, error_body(planned, f"mock upstream error {planned}")
    return planned


def prompt_tokens(messages: Sequence[Any]) -> int:
    """Deterministic stand-in for a tokenizer: words across all message texts."""
    return sum(len(content_text(m.get("content")).split()) for m in messages if isinstance(m, dict))


def error_body(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error" if 400 <= status < 500 else "server_error",
            "param": None,
            "code": _ERROR_CODES.get(status, "server_error" if status >= 500 else str(status)),
        }
    }
