"""A small real A2A agent for tests and the demo, built on a2a-sdk 1.3.0's server.

Unlike the other simulators this is not an imitation: the protocol is served by the official
SDK (JSON-RPC, protocol 1.0 plus the SDK's 0.3 compatibility layer), and only the agent's
behaviour is ours (:mod:`corral.sim.a2a.agent` documents the prompt conventions). a2a-sdk is
imported lazily, when an app is built.

In process: ``create_app(llm_url)``; standalone: ``python -m corral.sim.a2a --llm-url URL``.
"""

from corral.sim.a2a.app import LEGACY_CARD_PATH, RPC_PATH, create_app

__all__ = ["LEGACY_CARD_PATH", "RPC_PATH", "create_app"]
