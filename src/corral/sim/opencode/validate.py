"""Request-body checks that fail with the real server's 400 messages.

OpenCode 1.18 validates payloads with Effect Schema; its messages read like
``Missing key\\n  at ["parts"][0]["text"]`` or ``Expected array, got "x"\\n  at ["parts"]``.
Clients may show or log them, so the simulator words them the same way.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MISSING", "PART_TYPES", "BadPayload", "check_object", "check_prompt", "check_reply"]

PART_TYPES = ("text", "file", "agent", "subtask")


class BadPayload(Exception):
    """Rendered as 400 ``{"name": "BadRequest", "data": {"message", "kind": "Payload"}}``."""


def _at(path: list[str | int]) -> str:
    return "".join(f"[{json.dumps(step)}]" for step in path)


# Stands for an absent value (JavaScript's ``undefined``): a missing body or key.
MISSING: Any = object()


def _got(value: Any) -> str:
    return "undefined" if value is MISSING else json.dumps(value)


def _fail(expected: str, value: Any, path: list[str | int]) -> BadPayload:
    if value is MISSING and path:
        return BadPayload(f"Missing key\n  at {_at(path)}")
    where = f"\n  at {_at(path)}" if path else ""
    return BadPayload(f"Expected {expected}, got {_got(value)}{where}")


def check_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _fail("object", body, [])
    return body


def check_prompt(raw: Any) -> dict[str, Any]:
    body = check_object(raw)
    parts = body.get("parts", MISSING)
    if not isinstance(parts, list):
        raise _fail("array", parts, ["parts"])
    for index, part in enumerate(parts):
        path: list[str | int] = ["parts", index]
        if not isinstance(part, dict):
            raise _fail("object", part, path)
        kind = part.get("type", MISSING)
        if kind not in PART_TYPES:
            raise _fail(" | ".join(json.dumps(t) for t in PART_TYPES), kind, [*path, "type"])
        if kind == "text" and not isinstance(part.get("text", MISSING), str):
            raise _fail("string", part.get("text", MISSING), [*path, "text"])
    return body


def check_reply(body: Any, key: str) -> tuple[str, str | None]:
    """``{"reply": ...}`` (or the legacy ``{"response": ...}``) plus an optional message."""
    payload = check_object(body)
    reply = payload.get(key, MISSING)
    if reply not in ("once", "always", "reject"):
        raise _fail('"once" | "always" | "reject"', reply, [key])
    message = payload.get("message")
    return str(reply), message if isinstance(message, str) else None
