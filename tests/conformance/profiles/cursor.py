"""Cursor Cloud Agents: the simulator (cloud only), proved by the official ``@cursor/sdk``."""

from __future__ import annotations

from tests.conformance.profiles import Profile, Prompts

PROFILES = [
    Profile(
        id="cursor-sim",
        kind="cursor",
        oracle="simulator corral.sim.cursor, proved by @cursor/sdk 1.0.32",
        fixture="cursor_sim_runtime",
        prompts=Prompts(
            text="hello world from corral",
            text_reply="Echo: hello world from corral",
            tool='run it [[tool:run_terminal_cmd {"command":"echo hi"}]]',
            tool_name="run_terminal_cmd",
            slow="[[slow:4]] a slow answer with several words",
            slow_reply="Echo: a slow answer with several words",
            error="[[error:400]] please fail",
            approval=None,  # Cursor's cloud agents run autonomously: no tool approvals
        ),
    ),
]
