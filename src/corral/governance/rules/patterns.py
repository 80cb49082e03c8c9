"""Glob patterns for tool, server, model and runtime names: ``*`` any run, ``?`` one character.

Compiled once per snapshot; matching is case-sensitive because tool names are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from corral.domain.errors import InvalidRequest


def compile_glob(pattern: str) -> re.Pattern[str]:
    if not isinstance(pattern, str) or not pattern:
        raise InvalidRequest("patterns must be non-empty strings", code="invalid_policy")
    parts = (".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), re.DOTALL)


def compile_globs(patterns: object, field: str) -> tuple[re.Pattern[str], ...]:
    if patterns is None:
        return ()
    if not isinstance(patterns, list) or not patterns:
        raise InvalidRequest(
            f"{field!r} must be a non-empty list of patterns", code="invalid_policy"
        )
    return tuple(compile_glob(p) for p in patterns)


def any_match(patterns: Iterable[re.Pattern[str]], *values: str | None) -> bool:
    return any(p.fullmatch(v) for p in patterns for v in values if v is not None)
