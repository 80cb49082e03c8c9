"""A simulated Hermes Agent API server (profile: ``hermes-agent`` 0.19.0, plus newer fields).

The real server is the oracle (``tests/runtimes/hermes/test_hermes_sim_faithful.py`` runs the
same runs against both); the simulator exists for fast tests and for what 0.19.0 lacks
(``request_id`` on approvals, ``/steer``) with ``SimConfig(newer=True)``. Runs call a real
OpenAI-compatible upstream (normally :mod:`corral.sim.mock_llm`) over HTTP.
"""

from corral.sim.hermes.app import HERMES_VERSION, SimConfig, SimState, create_app

__all__ = ["HERMES_VERSION", "SimConfig", "SimState", "create_app"]
