"""Binds the test agent to a2a-sdk's ``AgentExecutor`` base class at run time, so importing
:mod:`corral.sim.a2a` never needs a2a-sdk (only building the app does)."""

from __future__ import annotations

from typing import Any

from corral.sim.a2a.agent import ScriptedAgent


def sdk_executor(agent: ScriptedAgent) -> Any:
    from a2a.server.agent_execution import AgentExecutor, RequestContext
    from a2a.server.events import EventQueue

    class _Executor(AgentExecutor):
        async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
            await agent.execute(context, event_queue)

        async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
            await agent.cancel(context, event_queue)

    return _Executor()
