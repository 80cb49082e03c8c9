"""Prometheus metrics (no authentication, like the health checks: expose it to scrapers only)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from corral.api.deps import Svc
from corral.telemetry.metrics import CONTENT_TYPE

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(svc: Svc) -> Response:
    """Metrics in the Prometheus text format (see docs/observability.md)."""
    return Response(await svc.telemetry.scrape(), media_type=CONTENT_TYPE)
