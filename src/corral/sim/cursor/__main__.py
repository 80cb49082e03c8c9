"""``python -m corral.sim.cursor --port N --llm-url URL``: serve a simulated Cursor API.

Point the official SDK at it with ``CURSOR_BACKEND_URL=http://127.0.0.1:N``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from corral.sim.cursor.app import create_app
from corral.sim.cursor.config import SimConfig


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn  # only the CLI needs a server at import time

    parser = argparse.ArgumentParser(prog="python -m corral.sim.cursor")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--llm-url", default="http://127.0.0.1:8765", help="mock LLM base URL")
    parser.add_argument("--api-key", action="append", help="accepted key (default: any)")
    parser.add_argument("--retention", type=float, default=300.0, help="stream retention (s)")
    parser.add_argument("--heartbeat", type=float, default=15.0, help="seconds between heartbeats")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    config = SimConfig(
        llm_url=args.llm_url,
        api_keys=frozenset(args.api_key) if args.api_key else None,
        stream_retention_s=args.retention,
        heartbeat_interval=args.heartbeat,
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
