"""``python -m corral.sim.a2a --port N --llm-url URL [--api-key KEY]``: serve the test agent."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from corral.sim.a2a.app import create_app


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn  # only the CLI needs a server at import time

    parser = argparse.ArgumentParser(prog="python -m corral.sim.a2a")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--llm-url", default="http://127.0.0.1:8765", help="mock LLM base URL")
    parser.add_argument("--api-key", default=None, help="require this X-API-Key")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    app = create_app(args.llm_url, api_key=args.api_key)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
