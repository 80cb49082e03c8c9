"""A simulated Claude Managed Agents API (beta ``managed-agents-2026-04-01``).

The cloud service cannot run here, so this simulator stands in for it; it is proven faithful by
the official ``anthropic`` SDK (2.14.0, and 1.17 for the older auth headers) driven against it
unmodified (``tests/runtimes/claude_agents/test_sim_sdk.py``). Agents run against a real
OpenAI-compatible upstream (normally :mod:`corral.sim.mock_llm`) over HTTP.
"""

from corral.sim.claude_agents.app import SimState, create_app
from corral.sim.claude_agents.config import BETA, Price, SimConfig

__all__ = ["BETA", "Price", "SimConfig", "SimState", "create_app"]
