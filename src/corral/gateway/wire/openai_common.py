"""What OpenAI's two formats share: the error envelope and the cached-token split of usage."""

from __future__ import annotations

from typing import Any

import orjson

from corral.gateway.wire.base import Usage, count, parse_json

# OpenAI itself sends "invalid_request_error" for most 4xx (a bad key included, told apart by
# `code`), "insufficient_quota" when the account is out of credit and "server_error" for 5xx. The
# SDK picks its exception class from the status alone and exposes `type` and `code` verbatim, so
# any string works; these names say what happened, and 402 (a Corral budget with no room) uses
# OpenAI's own quota type, which agents such as Codex treat as "do not retry".
_TYPES = {
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def error_type(status: int) -> str:
    if status >= 500:
        return "server_error"
    return _TYPES.get(status, "invalid_request_error")


def error_object(status: int, code: str, message: str) -> dict[str, Any]:
    return {"message": message, "type": error_type(status), "param": None, "code": code}


def error_body(status: int, code: str, message: str) -> bytes:
    """``{"error": {...}}``: the SDK raises ``APIStatusError`` with ``.code`` = ``code``."""
    return orjson.dumps({"error": error_object(status, code, message)})


def is_error_body(raw: bytes) -> bool:
    body = parse_json(raw) if raw.lstrip()[:1] == b"{" else None
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and isinstance(error.get("message"), str)


def split_usage(usage: Any, input_key: str, output_key: str, details_key: str) -> Usage:
    """OpenAI's input count includes cached tokens (and, where reported, cache writes).

    ``cache_write_tokens`` is new in the details objects; like ``cached_tokens`` it is taken to be
    part of the input total, so the split still adds up to what was billed.
    """
    details = usage.get(details_key)
    cached = count(details, "cached_tokens")
    written = count(details, "cache_write_tokens")
    return Usage(
        input_tokens=max(0, count(usage, input_key) - cached - written),
        output_tokens=count(usage, output_key),
        cache_read_tokens=cached,
        cache_write_tokens=written,
    )
