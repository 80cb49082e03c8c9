"""A faithful simulated ``opencode serve`` (profile: OpenCode 1.18.33).

An adapter written against the real server works unchanged against this one; the
conformance suite runs the same scenarios against both. Turns call a real
OpenAI-compatible upstream (normally :mod:`corral.sim.mock_llm`) over HTTP.
"""

from corral.sim.opencode.app import SimState, create_app
from corral.sim.opencode.config import OPENCODE_VERSION, Price, SimConfig

__all__ = ["OPENCODE_VERSION", "Price", "SimConfig", "SimState", "create_app"]
