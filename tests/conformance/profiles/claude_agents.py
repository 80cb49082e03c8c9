"""Claude Managed Agents: cloud only, so the profile runs against the simulator
(tests/plugins/claude_agents.py), which the official anthropic SDK 2.14.0 and 1.17 drive
unmodified in tests/runtimes/claude_agents/test_sim_sdk.py."""

from __future__ import annotations

from tests.conformance.profiles import Profile, Prompts

#: A client-side tool: the session waits for the caller's result (``input.requested``).
LOOKUP = {
    "name": "lookup",
    "description": "Look a word up on the caller's side.",
    "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}},
}

PROFILES = [
    Profile(
        id="claude_agents-sim",
        kind="claude_agents",
        oracle="simulator corral.sim.claude_agents, proved by anthropic 2.14.0 and 1.17",
        fixture="claude_agents_sim_runtime",
        prompts=Prompts(
            text="hello world from corral",
            text_reply="Echo: hello world from corral",
            tool='read it [[tool:read {"file_path":"hello.txt"}]]',
            tool_name="read",
            slow="[[slow:4]] a slow answer with several words",
            slow_reply="Echo: a slow answer with several words",
            error="[[error:400]] please fail",
            approval='[[tool:bash {"command":"echo hi"}]]',
            approval_tool="bash",
            client_input='[[tool:lookup {"word":"corral"}]]',
        ),
        agent={
            "model": "claude-sonnet-4-5",
            "metadata": {"claude_ask_tools": ["bash"], "claude_custom_tools": [LOOKUP]},
        },
    ),
]
