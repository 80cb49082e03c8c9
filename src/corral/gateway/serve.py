"""``python -m corral.gateway.serve``: what ``corral gateway`` turns into once its options are read.

The CLI execs into this module instead of serving from its own process, so a gateway worker
carries only what serving model calls needs (no Typer, Rich or API client modules): about
10 MB less resident memory per worker, and nothing else changes. Settings come from the same
``CORRAL_*`` environment.
"""

from __future__ import annotations

import argparse

import uvicorn

from corral.config import Settings
from corral.telemetry import logs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="corral gateway")
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=8701)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    uvicorn.run(
        "corral.gateway.process:create_app", factory=True, host=args.host or settings.host,
        port=args.port, workers=args.workers, http="httptools", loop="uvloop", access_log=False,
        log_config=None, log_level=settings.log_level,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_seconds)),
    )  # fmt: skip


if __name__ == "__main__":
    main()
