"""The floor of the ``gateway`` table: a bare Python forwarder, the least any Python proxy does.

uvicorn (httptools, uvloop) in front of a raw ASGI app that sends each request as it came to the
upstream through one shared ``aiohttp.ClientSession`` and passes the reply back, a streamed one
chunk by chunk. No authentication, no policy, no accounting, no logging.

``python -m bench.gateway_forwarder --port N --upstream http://127.0.0.1:P``
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import uvicorn

HOP = {b"host", b"content-length", b"connection", b"transfer-encoding", b"keep-alive"}
PASS_BACK = ("content-type", "cache-control")


def make_app(upstream: str) -> Any:
    session: aiohttp.ClientSession | None = None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal session
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
                    session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if session is not None:
                        await session.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert session is not None and scope["type"] == "http"
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k not in HOP}
        url = upstream + scope["raw_path"].decode()
        async with session.request(scope["method"], url, data=body, headers=headers) as reply:
            out = [(k.encode(), reply.headers[k].encode()) for k in PASS_BACK if k in reply.headers]
            if reply.headers.get("content-type", "").startswith("text/event-stream"):
                await send({"type": "http.response.start", "status": reply.status, "headers": out})
                async for chunk in reply.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                return
            data = await reply.read()
            out.append((b"content-length", str(len(data)).encode()))
            await send({"type": "http.response.start", "status": reply.status, "headers": out})
            await send({"type": "http.response.body", "body": data})

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_forwarder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8001")
    args = parser.parse_args(argv)
    uvicorn.run(
        make_app(args.upstream.rstrip("/")),
        host=args.host,
        port=args.port,
        http="httptools",
        loop="uvloop",
        lifespan="on",
        access_log=False,
        log_level="warning",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
