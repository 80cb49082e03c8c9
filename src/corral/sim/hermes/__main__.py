"""``python -m corral.sim.hermes --port N --llm-url URL``: serve a simulated Hermes API server.

Mirrors ``hermes gateway run`` with the API server enabled: port 8642 and host 127.0.0.1 by
default, Bearer key from ``API_SERVER_KEY``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from corral.sim.hermes.app import SimConfig, create_app


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn  # only the CLI needs a server at import time

    parser = argparse.ArgumentParser(prog="python -m corral.sim.hermes")
    parser.add_argument("--host", default=os.environ.get("API_SERVER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("API_SERVER_PORT", "8642")))
    parser.add_argument("--llm-url", default="http://127.0.0.1:8765", help="mock LLM base URL")
    parser.add_argument("--keepalive", type=float, default=30.0, help="seconds between keepalives")
    parser.add_argument("--newer", action="store_true", help="request_id on approvals, /steer")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    key = os.environ.get("API_SERVER_KEY") or SimConfig.api_key
    config = SimConfig(
        llm_url=args.llm_url, api_key=key, keepalive=args.keepalive, newer=args.newer
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
