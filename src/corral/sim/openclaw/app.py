"""The simulated OpenClaw Gateway as a Starlette app: WebSocket control plane on ``/`` plus the
bits of the HTTP surface a client probes (``GET /v1/models`` with Bearer auth).

``app.state.gateway`` (:class:`GatewayState`) is the test hook: ``drop_connections()`` cuts
every socket, ``send_garbage()`` sends a malformed frame, ``clients``/``sessions`` can be read.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from corral.sim.openclaw.config import SimConfig
from corral.sim.openclaw.gateway import gateway_endpoint
from corral.sim.openclaw.state import GatewayState


def _error(status: int, message: str) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error"}}
    return JSONResponse(body, status_code=status)


def _authorized(request: Request) -> bool:
    token = request.app.state.gateway.config.token
    return token is None or request.headers.get("authorization") == f"Bearer {token}"


async def list_models(request: Request) -> Response:
    if not _authorized(request):
        return _error(401, "Unauthorized")
    agents = request.app.state.gateway.config.agents
    ids = ["openclaw", "openclaw/default", *(f"openclaw/{a}" for a in agents)]
    data = [{"id": i, "object": "model", "created": 0, "owned_by": "openclaw"} for i in ids]
    return JSONResponse({"object": "list", "data": data})


async def chat_completions(request: Request) -> Response:
    # The OpenAI-compatible endpoints are off by default on the real gateway; the simulator
    # only reproduces that (Corral drives the WebSocket protocol).
    if not _authorized(request):
        return _error(401, "Unauthorized")
    return _error(404, "Not Found")


def create_app(config: SimConfig | None = None) -> Starlette:
    app = Starlette(
        routes=[
            WebSocketRoute("/", gateway_endpoint),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/responses", chat_completions, methods=["POST"]),
        ]
    )
    app.state.gateway = GatewayState(config or SimConfig())
    return app
