"""A2A: the test agent on a2a-sdk 1.3.0 (protocol 1.0, and 0.3 through its compat layer), and
an agent on a2a-sdk 0.3.26 (a 0.3-only peer). Fixtures: tests/plugins/a2a.py.

Core A2A has no tool events, so ``tool_name`` is empty and the suite skips the tool scenario on
the ``tool_events`` flag; the client-input scenario uses the test agent's ``[[ask:...]]``.
"""

from __future__ import annotations

from tests.conformance.profiles import Profile, Prompts

_PROMPTS = Prompts(
    text="hello world from corral",
    text_reply="Echo: hello world from corral",
    tool="",  # A2A cannot express a tool call (capability tool_events=False)
    tool_name="",
    slow="[[slow:4]] a slow answer with several words",
    slow_reply="Echo: a slow answer with several words",
    error="[[error:400]] please fail",
    client_input="paint the fence [[ask:What colour?]]",
)

PROFILES = [
    Profile(
        id="a2a-1.0",
        kind="a2a",
        oracle="real a2a-sdk 1.3.0 server (protocol 1.0)",
        fixture="a2a_v10_runtime",
        prompts=_PROMPTS,
    ),
    Profile(
        id="a2a-0.3",
        kind="a2a",
        oracle="real a2a-sdk 1.3.0 server (protocol 0.3 compat)",
        fixture="a2a_v03_runtime",
        prompts=_PROMPTS,
    ),
    Profile(
        id="a2a-0.3-peer",
        kind="a2a",
        oracle="real a2a-sdk 0.3.26 server (protocol 0.3)",
        fixture="a2a_peer_v03_runtime",
        prompts=_PROMPTS,
    ),
]
