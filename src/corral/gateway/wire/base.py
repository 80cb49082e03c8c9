"""The wire layer's shared vocabulary, and the contract each of the three API formats implements.

Pure: no I/O, no asyncio, no clock. The gateway forwards a request to an upstream that speaks the
same format it arrived in, so a :class:`Wire` never translates between formats: it only checks
the minimum, injects the bounds Corral needs, meters what comes back and speaks errors the way the
caller's SDK expects them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

if TYPE_CHECKING:
    from corral.gateway.wire.stream import StreamMeter

Body = dict[str, Any]


@dataclass(slots=True)
class Usage:
    """Tokens one call used, split so that the four numbers add up to what was billed.

    ``input_tokens`` never includes cache reads or writes, whatever the format reports (OpenAI
    counts them inside ``prompt_tokens``/``input_tokens``; Anthropic does not).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(slots=True)
class Prepared:
    """What :meth:`Wire.prepare` learnt about a request, and what it changed in it."""

    model: str
    stream: bool
    #: The output bound in force for the whole request: the caller's or the injected one (for
    #: OpenAI chat, times ``n``, since the bound is per choice).
    max_output_tokens: int
    injected_bound: bool
    #: OpenAI chat only: the gateway turned on ``stream_options.include_usage``, so the meter must
    #: hide the usage chunk the caller did not ask for.
    injected_usage: bool
    #: The request body's UTF-8 byte length. A text token is at least one byte, so this bounds the
    #: input tokens of inline text; it does NOT bound content the upstream adds or fetches itself
    #: (images or files by URL or id, ``previous_response_id``, a provider's tool-use preamble).
    input_bound: int


class WireError(Exception):
    """A request body the gateway refuses before any upstream sees it (HTTP 400).

    ``code`` is stable snake_case (``invalid_json``, ``model_required``, ``invalid_body``);
    ``message`` is for people.
    """

    status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_object(raw: bytes) -> Body:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise WireError("invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise WireError("invalid_json", "The request body must be a JSON object.")
    return body


def parse_json(raw: bytes) -> Any:
    """A response body's JSON, or None: upstream bodies may be HTML, empty or cut short."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def require_model(body: Body) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise WireError("model_required", "The request must name a model (a non-empty string).")
    return model


def require_stream(body: Body) -> bool:
    stream = body.get("stream")
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise WireError("invalid_body", "'stream' must be a boolean.")
    return stream


def require_messages(body: Body) -> None:
    if not isinstance(body.get("messages"), list):
        raise WireError("invalid_body", "'messages' must be a list.")


def bound(body: Body, field: str) -> int | None:
    """The positive integer at ``field``, or None when absent or null (the caller set no bound)."""
    value = body.get(field)
    if value is None:
        return None
    # bool is an int subclass: `true` is not a token count.
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise WireError("invalid_body", f"'{field}' must be a positive integer.")
    return value


def count(obj: Any, key: str) -> int:
    """A token count from a usage object; absent, null or malformed counts as zero."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def body_length(body: Body, body_len: int | None) -> int:
    # Serializing again costs far less than parsing did, and only when the caller lost the size.
    return body_len if body_len is not None else len(orjson.dumps(body))


class Wire(ABC):
    """One API format. Instances are stateless singletons (see ``WIRES``); streams get a meter."""

    #: "openai.chat", "openai.responses" or "anthropic.messages".
    name: ClassVar[str]
    #: Which upstream kind speaks it: "openai" or "anthropic" (``UpstreamKind`` values).
    family: ClassVar[str]
    #: The path the caller posts to (``wire_for_path`` maps it back here).
    path: ClassVar[str]
    #: Appended to the upstream's base URL: OpenAI-kind base URLs end in /v1, Anthropic's do not.
    upstream_path: ClassVar[str]

    def parse(self, raw: bytes) -> Body:
        """The request body as a dict; WireError("invalid_json") unless it is a JSON object."""
        return parse_object(raw)

    @abstractmethod
    def prepare(self, body: Body, default_max_output: int, body_len: int | None = None) -> Prepared:
        """Validate the minimum and inject the output bound (and usage reporting) in place.

        ``body_len`` is the raw body's byte length when the caller has it; without it the body
        is serialized again to measure it.
        """

    def set_model(self, body: Body, upstream_model: str) -> None:
        """Name the upstream's model (a route may serve an alias under another name)."""
        body["model"] = upstream_model

    def usage_from_body(self, raw: bytes) -> Usage | None:
        """Usage in a non-streaming success body, or None when it carries none."""
        body = parse_json(raw)
        usage = body.get("usage") if isinstance(body, dict) else None
        return self.usage_of(usage) if isinstance(usage, dict) else None

    @abstractmethod
    def usage_of(self, usage: dict[str, Any]) -> Usage:
        """This format's ``usage`` object as token counts."""

    @abstractmethod
    def meter(self, injected_usage: bool) -> StreamMeter:
        """A fresh meter for one streamed response."""

    @abstractmethod
    def error_body(self, status: int, code: str, message: str) -> bytes:
        """An error body in this format that the caller's official SDK parses."""

    @abstractmethod
    def is_error_body(self, raw: bytes) -> bool:
        """Whether an upstream error body is already in this format (then it passes unchanged)."""

    @abstractmethod
    def sse_error(self, status: int, code: str, message: str) -> bytes:
        """A terminal error event, for an upstream failure after the stream has started."""
