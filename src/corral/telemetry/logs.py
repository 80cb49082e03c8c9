"""Server logs: one JSON object per line (or plain text), never a secret.

Each JSON line has ``timestamp``, ``level``, ``logger`` and ``message``, the ``trace_id`` and
``span_id`` of the current span when there is one, ``exception`` for tracebacks, and any
``extra`` fields. :class:`Redact` runs before either format: Corral keys keep only their public
prefix, bearer tokens and values of fields named like secrets become ``[REDACTED]``.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any, Literal

from opentelemetry import trace

LogFormat = Literal["json", "text"]

REDACTED = "[REDACTED]"
_SECRET_NAMES = r"password|passwd|secret|api[_-]?key|authorization|access[_-]?token|master[_-]?key"
_SECRET_FIELD = re.compile(rf"(?i)^(.*[_-])?({_SECRET_NAMES})$")
# password=..., "api_key": "...", Authorization: ... (whatever the quoting)
_SECRET_ASSIGNMENT = re.compile(
    rf"(?i)([\"']?\b(?:\w*[_-])?(?:{_SECRET_NAMES})[\"']?\s*[:=]\s*[\"']?)"
    rf"(?!\[REDACTED\])(?:(?:bearer|basic)\s+)?[^\s\"',;&}}]+"
)
_PATTERNS = (
    # ck_<public prefix>_<secret>: the prefix is a lookup handle, safe to show.
    (re.compile(r"\b(ck_[0-9a-f]{10})_[A-Za-z0-9_-]+"), rf"\1_{REDACTED}"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    (_SECRET_ASSIGNMENT, rf"\1{REDACTED}"),
)
#: Attributes every LogRecord has: anything else came in through ``extra=``.
#: (uvicorn adds ``color_message``: the message again, with terminal colours.)
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message", "asctime", "taskName", "color_message",
}  # fmt: skip


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(name: str, value: Any) -> Any:
    if _SECRET_FIELD.match(name):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value("", v) for v in value]
    return value


class Redact(logging.Filter):
    """Rewrite a record so that no handler sees a secret: its message, extras and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        for name in set(record.__dict__) - _STANDARD:
            record.__dict__[name] = _redact_value(name, record.__dict__[name])
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def _current_ids() -> tuple[str, str] | None:
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = _current_ids()
        if ids is not None:
            line["trace_id"], line["span_id"] = ids
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        for name in sorted(set(record.__dict__) - _STANDARD):
            line.setdefault(name, record.__dict__[name])
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = _current_ids()
        return f"{text} trace_id={ids[0]} span_id={ids[1]}" if ids else text


#: Marks the handler :func:`configure` installed, so configuring again replaces it.
_HANDLER_NAME = "corral"


def configure(fmt: LogFormat, level: str) -> logging.Handler:
    """Send every log record (Corral's, uvicorn's, libraries') through one redacting handler."""
    handler = logging.StreamHandler()
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(Redact())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
