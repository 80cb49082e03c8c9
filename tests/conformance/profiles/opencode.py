"""OpenCode: the simulator and the real ``opencode serve`` 1.18.33 (tests/plugins/real_opencode.py)."""

from __future__ import annotations

from tests.conformance.profiles import Profile, Prompts

_PROMPTS = Prompts(
    text="hello world from corral",
    text_reply="Echo: hello world from corral",
    tool='read it [[tool:read {"filePath":"hello.txt"}]]',
    tool_name="read",
    slow="[[slow:4]] a slow answer with several words",
    slow_reply="Echo: a slow answer with several words",
    error="[[error:400]] please fail",
    approval='[[tool:bash {"command":"echo hi","description":"say hi"}]]',
    approval_tool="bash",
)

PROFILES = [
    Profile(
        id="opencode-sim",
        kind="opencode",
        oracle="simulator corral.sim.opencode, matched frame by frame to opencode-ai 1.18.33 traces",
        fixture="opencode_sim_runtime",
        prompts=_PROMPTS,
    ),
    Profile(
        id="opencode-real",
        kind="opencode",
        oracle="real opencode-ai 1.18.33 (npm)",
        fixture="real_opencode_runtime",
        prompts=_PROMPTS,
    ),
]
