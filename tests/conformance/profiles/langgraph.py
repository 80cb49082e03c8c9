"""LangGraph: a real ``langgraph dev`` serving a Deep Agents graph (tests/plugins/langgraph.py,
graph in tests/fixtures/langgraph/agent_graph.py)."""

from __future__ import annotations

from tests.conformance.profiles import Profile, Prompts

PROFILES = [
    Profile(
        id="langgraph-real",
        kind="langgraph",
        oracle="real langgraph-api 0.16.7 + deepagents 0.7.32",
        fixture="langgraph_real_runtime",
        prompts=Prompts(
            text="hello world from corral",
            text_reply="Echo: hello world from corral",
            tool='weather please [[tool:get_weather {"city":"Paris"}]]',
            tool_name="get_weather",
            slow="[[slow:4]] a slow answer with several words",
            slow_reply="Echo: a slow answer with several words",
            error="[[error:400]] please fail",
            # send_email is gated by interrupt_on: Deep Agents' human-in-the-loop middleware.
            approval='mail it [[tool:send_email {"to":"a@b.c","body":"hi"}]]',
            approval_tool="send_email",
            # ask_user calls interrupt() with a question: answered through /inputs.
            client_input='ask me [[tool:ask_user {"question":"Which colour?"}]]',
        ),
    ),
]
