"""The benchmark's baseline gateway: Corral's worker with tracing and audit left out.

``python -m bench.gateway_untraced --port N`` serves the worker ``corral gateway`` serves (same
``CORRAL_*`` settings, governance, budget reservation, call records, metrics), minus what
tracing and audit add to a call: the trace context (read, made and passed upstream), span
export, the call batches' audit seals and the decision records. The ``gateway_overhead``
measurement runs it next to the real one, so the overhead is taken on the real process.
"""

from __future__ import annotations

import argparse

import uvicorn

from corral.gateway.process import StandaloneGateway, few_malloc_arenas


def create_app() -> StandaloneGateway:
    few_malloc_arenas()
    return StandaloneGateway(observed=False)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_untraced")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        "bench.gateway_untraced:create_app", factory=True, host=args.host, port=args.port,
        http="httptools", loop="uvloop", access_log=False, log_config=None, log_level="warning",
    )  # fmt: skip


if __name__ == "__main__":
    main()
