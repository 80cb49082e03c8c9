"""Hermes Agent: the real API server of ``hermes-agent`` 0.19.0 and the simulator that mirrors it
(both from tests/plugins/hermes.py)."""

from __future__ import annotations

from tests.conformance.profiles import Profile, Prompts

_PROMPTS = Prompts(
    text="hello world from corral",
    text_reply="Echo: hello world from corral",
    tool='list it [[tool:terminal {"command":"echo hi"}]]',
    tool_name="terminal",
    slow="[[slow:4]] a slow answer with several words",
    slow_reply="Echo: a slow answer with several words",
    error="[[error:400]] please fail",
    # Hermes' dangerous-command guard asks about recursive deletes.
    approval='remove it [[tool:terminal {"command":"rm -rf /tmp/corral-hermes-test-dir"}]]',
    approval_tool="terminal",
)

PROFILES = [
    Profile(
        id="hermes-real",
        kind="hermes",
        oracle="real hermes-agent 0.19.0 (PyPI)",
        fixture="real_hermes_runtime",
        prompts=_PROMPTS,
    ),
    Profile(
        id="hermes-sim",
        kind="hermes",
        oracle="simulator corral.sim.hermes, matched to hermes-agent 0.19.0 traces",
        fixture="hermes_sim_runtime",
        prompts=_PROMPTS,
    ),
]
