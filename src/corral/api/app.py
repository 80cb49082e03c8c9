"""The HTTP application: built from settings, no module globals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from corral import services as services_module
from corral.api import errors
from corral.api.gateway_paths import GatewayPaths
from corral.api.limits import BodySizeLimit
from corral.api.request_context import RequestContext
from corral.api.routes import (
    agents,
    approvals,
    audit,
    budgets,
    gateway,
    health,
    identity,
    metrics,
    policies,
    prices,
    runtimes,
    sessions,
    traces,
)
from corral.config import Settings
from corral.services import Services

ROUTERS = (
    health.router,
    metrics.router,
    identity.router,
    runtimes.router,
    agents.router,
    sessions.router,
    traces.router,
    approvals.router,
    policies.router,
    budgets.router,
    prices.router,
    audit.router,
    gateway.router,
)


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """Build the app. Pass ``services`` to share ones the caller owns (tests, the demo)."""
    settings = settings or (services.settings if services else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        svc = services or await services_module.build(settings)
        app.state.services = svc
        if owned:
            svc.start()
        try:
            yield
        finally:
            if owned:
                await svc.aclose()

    app = FastAPI(
        title="Corral",
        version="0.1.0",
        description="One control plane for every agent runtime.",
        lifespan=lifespan,
    )
    for router in ROUTERS:
        app.include_router(router)
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContext)  # every record of the request carries its id
    # Outermost: model calls go to the gateway before any API middleware runs.
    app.add_middleware(GatewayPaths, gateway_of=lambda: app.state.services.gateway_app)
    return app
