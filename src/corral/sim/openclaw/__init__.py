"""A simulated OpenClaw Gateway (WebSocket protocol v4), checked against openclaw 2026.9.6.

See :mod:`corral.sim.openclaw.runner` for the reproduced quirks; ``python -m
corral.sim.openclaw`` serves one standalone.
"""

from corral.sim.openclaw.app import create_app
from corral.sim.openclaw.config import OPENCLAW_VERSION, SimConfig

__all__ = ["OPENCLAW_VERSION", "SimConfig", "create_app"]
