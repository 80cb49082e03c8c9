"""``python -m corral.sim.openclaw --port N --llm-url URL --token T``: serve a simulated gateway.

Mirrors ``openclaw gateway run``: port 18789 on loopback by default, token auth.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from corral.sim.openclaw.app import create_app
from corral.sim.openclaw.config import SimConfig


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn  # only the CLI needs a server at import time

    parser = argparse.ArgumentParser(prog="python -m corral.sim.openclaw")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18789)
    parser.add_argument("--llm-url", default="http://127.0.0.1:8765", help="mock LLM base URL")
    parser.add_argument("--token", default="sim-token", help="gateway token ('' disables auth)")
    parser.add_argument("--no-exec-ask", action="store_true", help="run exec without approval")
    parser.add_argument("--model-retries", type=int, default=8)
    parser.add_argument("--retry-delay", type=float, default=1.0)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    config = SimConfig(
        llm_url=args.llm_url,
        token=args.token or None,
        exec_ask=not args.no_exec_ask,
        model_retries=args.model_retries,
        retry_delay_s=args.retry_delay,
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
