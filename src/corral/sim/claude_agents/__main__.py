"""``python -m corral.sim.claude_agents --port N --llm-url URL``: serve a simulated Managed
Agents API. ``--api-key`` (repeatable) restricts the accepted keys; without it any key works."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from corral.sim.claude_agents.app import create_app
from corral.sim.claude_agents.config import SimConfig


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn  # only the CLI needs a server at import time

    parser = argparse.ArgumentParser(prog="python -m corral.sim.claude_agents")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4300)
    parser.add_argument("--llm-url", default="http://127.0.0.1:8765", help="mock LLM base URL")
    parser.add_argument("--api-key", action="append", default=[], help="accepted API key")
    parser.add_argument("--retry-delay", type=float, default=0.5)
    parser.add_argument("--max-retries", type=int, default=2)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    config = SimConfig(
        llm_url=args.llm_url,
        api_keys=frozenset(args.api_key) or None,
        retry_delay=args.retry_delay,
        max_retries=args.max_retries,
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
