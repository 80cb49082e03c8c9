"""OpenClaw Gateway over its WebSocket protocol v4: the simulator (fast suite) and the real
``openclaw@2026.9.6`` gateway (``make test-slow``), both from tests/plugins/openclaw.py.

Every prompt carries a mock-LLM directive: OpenClaw sends its own internal context block as the
last user message, so an unscripted prompt would make the mock echo that block instead.
The event stream is a WebSocket, so the HTTP fault proxy cannot cut or garble it
(``proxied_faults=False``); tests/runtimes/openclaw covers malformed frames and reconnects.
"""

from __future__ import annotations

from tests.conformance.profiles import Profile, Prompts

_PROMPTS = Prompts(
    text="[[slow:0.3]] hello world from corral",
    # The gateway wraps each prompt ("[Wed 2026-11-25 19:48 UTC] <text>\n\nRuntime: ..."), so
    # the mock echoes the wrapper too: match the words, not "Echo: <text>".
    text_reply="hello world from corral",
    tool='read it [[tool:read {"path":"hello.txt"}]]',
    tool_name="read",
    slow="[[slow:4]] a slow answer with several words",
    slow_reply="a slow answer with several words",
    error="[[error:400]] please fail",
    # tools.exec.mode = "ask": every exec waits for an operator (Corral's connection).
    approval='run it [[tool:exec {"command":"echo hi"}]]',
    approval_tool="exec",
)

PROFILES = [
    Profile(
        id="openclaw-sim",
        kind="openclaw",
        oracle="simulator corral.sim.openclaw, checked against openclaw 2026.9.6 in make test-slow",
        fixture="openclaw_sim_runtime",
        prompts=_PROMPTS,
        proxied_faults=False,
    ),
    Profile(
        id="openclaw-real",
        kind="openclaw",
        oracle="real openclaw 2026.9.6 gateway (npm, node 24.21.0)",
        fixture="real_openclaw_runtime",
        prompts=_PROMPTS,
        proxied_faults=False,
        slow=True,
    ),
]
