"""``python -m corral.sim.opencode --port N --llm-url URL``: serve a simulated OpenCode.

Mirrors ``opencode serve``: port 4096 and host 127.0.0.1 by default, HTTP Basic auth when
``OPENCODE_SERVER_PASSWORD`` is set (user ``OPENCODE_SERVER_USERNAME``, default
``opencode``).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from corral.sim.opencode.app import create_app
from corral.sim.opencode.config import Price, SimConfig


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn  # only the CLI needs a server at import time

    parser = argparse.ArgumentParser(prog="python -m corral.sim.opencode")
    parser.add_argument("--host", "--hostname", dest="host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4096)
    parser.add_argument(
        "--llm-url",
        default="http://127.0.0.1:8765",
        help='mock LLM base URL, or "local" to answer its script in this process',
    )
    parser.add_argument("--directory", default=os.getcwd(), help="project dir (default: cwd)")
    parser.add_argument("--heartbeat", type=float, default=10.0, help="seconds between heartbeats")
    parser.add_argument("--cost-input", type=float, default=1.0, help="USD per 1M input tokens")
    parser.add_argument("--cost-output", type=float, default=2.0, help="USD per 1M output tokens")
    parser.add_argument("--permission", default="bash=ask", help="comma list of tool=action")
    parser.add_argument("--retry-delay", type=float, default=2.0, help="first retry backoff (s)")
    parser.add_argument("--max-retries", type=int, default=4)
    parser.add_argument("--silence", action="store_true", help="never publish turn-end frames")
    parser.add_argument(
        "--prompt-delay", type=float, default=0.0, help="seconds before prompt_async answers 204"
    )
    parser.add_argument(
        "--prompt-accept",
        choices=("before", "after"),
        default="before",
        help="take a delayed prompt before the delay, or after it if the client is still there",
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)

    rules = dict(item.split("=", 1) for item in args.permission.split(",") if "=" in item)
    config = SimConfig(
        llm_url=args.llm_url,
        directory=args.directory,
        password=os.environ.get("OPENCODE_SERVER_PASSWORD") or None,
        username=os.environ.get("OPENCODE_SERVER_USERNAME") or "opencode",
        heartbeat_interval=args.heartbeat,
        cost=Price(input=args.cost_input, output=args.cost_output),
        permission=rules,
        retry_initial_delay=args.retry_delay,
        max_retries=args.max_retries,
        silence=args.silence,
        prompt_delay=args.prompt_delay,
        prompt_accept=args.prompt_accept,
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
