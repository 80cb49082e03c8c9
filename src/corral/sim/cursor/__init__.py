"""A simulated Cursor Cloud Agents API (v1 agents/runs/SSE, plus legacy v0 polling).

Cursor's cloud agents cannot run here, so this simulator stands in for ``api.cursor.com``;
it is proved faithful by the official ``@cursor/sdk`` 1.0.32, unmodified, pointed at it with
``CURSOR_BACKEND_URL`` (``tests/runtimes/cursor/test_sdk_faithful.py``). Runs call a real
OpenAI-compatible upstream (normally :mod:`corral.sim.mock_llm`) over HTTP.
"""

from corral.sim.cursor.app import SimState, create_app
from corral.sim.cursor.config import SimConfig

__all__ = ["SimConfig", "SimState", "create_app"]
