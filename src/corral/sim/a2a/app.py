"""The A2A test agent as a Starlette app built from a2a-sdk 1.3.0's own server parts.

``DefaultRequestHandler`` + ``InMemoryTaskStore`` behind the SDK's JSON-RPC route (with its
0.3 compatibility layer on, so the same endpoint answers ``message/stream`` and
``SendStreamingMessage``) and the agent card at both well-known paths. The card's interface
URL follows the request's own scheme and host, so the app can be served on any port
(or behind a proxy that rewrites ``Host``) without knowing it in advance.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator
from typing import Any

from corral.sim.a2a.agent import AgentConfig, ScriptedAgent

RPC_PATH = "/a2a"
LEGACY_CARD_PATH = "/.well-known/agent.json"
AGENT_VERSION = "1.0.0"

_base_url: contextvars.ContextVar[str] = contextvars.ContextVar("a2a_sim_base_url", default="")


def _require_sdk() -> None:
    try:
        import a2a.server.routes  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "the A2A test agent needs a2a-sdk>=1.3 with its HTTP server extras "
            "(pip install 'a2a-sdk[http-server]==1.3.0')"
        ) from exc


def build_card(url: str, *, api_key: str | None = None) -> Any:
    from a2a.types import (
        AgentCapabilities,
        AgentCard,
        AgentInterface,
        AgentSkill,
        APIKeySecurityScheme,
        SecurityRequirement,
        SecurityScheme,
        StringList,
    )

    card = AgentCard(
        name="Corral A2A test agent",
        description="Echoes through a scripted model; asks questions on [[ask:...]].",
        version=AGENT_VERSION,
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="0.3"),
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(
                id="echo",
                name="Echo",
                description="Replies through the mock LLM.",
                tags=["test"],
            )
        ],
    )
    if api_key:
        scheme = APIKeySecurityScheme(location="header", name="X-API-Key")
        card.security_schemes["apiKey"].CopyFrom(SecurityScheme(api_key_security_scheme=scheme))
        card.security_requirements.append(
            SecurityRequirement(schemes={"apiKey": StringList(list=[])})
        )
    return card


def create_app(llm_url: str, *, api_key: str | None = None) -> Any:
    """The test agent; ``api_key`` makes it demand ``X-API-Key`` (401 otherwise)."""
    _require_sdk()
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
    from a2a.server.tasks import InMemoryTaskStore
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import JSONResponse

    from corral.sim.a2a.executor import sdk_executor

    card = build_card("http://placeholder" + RPC_PATH, api_key=api_key)
    config = AgentConfig(llm_url=llm_url)
    executor = ScriptedAgent(config)
    handler = DefaultRequestHandler(sdk_executor(executor), InMemoryTaskStore(), card)

    async def card_for_request(served: Any) -> Any:
        fresh = type(served)()
        fresh.CopyFrom(served)
        for interface in fresh.supported_interfaces:
            interface.url = _base_url.get() + RPC_PATH
        return fresh

    routes: list[Any] = []
    for path in ("/.well-known/agent-card.json", LEGACY_CARD_PATH):
        routes += create_agent_card_routes(card, card_modifier=card_for_request, card_url=path)
    routes += create_jsonrpc_routes(handler, RPC_PATH, enable_v0_3_compat=True)

    class _Gate:
        """Remembers the request's origin for the card and checks the API key, if any."""

        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            host = headers.get("host") or "127.0.0.1"
            token = _base_url.set(f"{scope.get('scheme', 'http')}://{host}")
            try:
                if api_key and scope["path"] == RPC_PATH and headers.get("x-api-key") != api_key:
                    deny = JSONResponse({"error": "missing or wrong X-API-Key"}, status_code=401)
                    await deny(scope, receive, send)
                    return
                await self.app(scope, receive, send)
            finally:
                _base_url.reset(token)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        await executor.aclose()  # the model client

    app = Starlette(routes=routes, middleware=[Middleware(_Gate)], lifespan=lifespan)
    app.state.agent = executor
    app.state.config = config
    return app
