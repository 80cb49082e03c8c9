"""The gateway's wire formats: pure parsing, bounding and metering of the three LLM APIs.

Each format is a stateless :class:`Wire` singleton; a streamed response gets its own
:class:`StreamMeter`. Nothing here does I/O, so the gateway owns every socket and clock.
"""

from __future__ import annotations

from corral.gateway.wire.anthropic_messages import AnthropicMessages
from corral.gateway.wire.base import Prepared, Usage, Wire, WireError
from corral.gateway.wire.openai_chat import OpenAIChat
from corral.gateway.wire.openai_responses import OpenAIResponses
from corral.gateway.wire.stream import StreamMeter

__all__ = [
    "WIRES",
    "AnthropicMessages",
    "OpenAIChat",
    "OpenAIResponses",
    "Prepared",
    "StreamMeter",
    "Usage",
    "Wire",
    "WireError",
    "wire_for_path",
]

WIRES: dict[str, Wire] = {
    wire.name: wire for wire in (OpenAIChat(), OpenAIResponses(), AnthropicMessages())
}
_BY_PATH = {wire.path: wire for wire in WIRES.values()}


def wire_for_path(path: str) -> Wire | None:
    """The format a caller speaks on ``path`` (a trailing slash is accepted), or None."""
    found = _BY_PATH.get(path)
    if found is None and path.endswith("/"):
        found = _BY_PATH.get(path[:-1])
    return found
