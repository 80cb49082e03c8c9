"""The Anthropic API error envelope and the request checks every route shares.

Errors are ``{"type": "error", "error": {"type", "message"}, "request_id"}`` with the status
the official SDK maps to its exception classes (400 BadRequestError, 401 AuthenticationError,
404 NotFoundError, 409 ConflictError ...). Both authentication styles are accepted: SDK 2.x sends
``Authorization: Bearer`` with ``anthropic-version: 2026-10-21``, SDK 1.17 sends ``X-Api-Key``
with ``2023-06-01``. The beta header must name ``managed-agents-2026-04-01``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from corral.sim.claude_agents.config import BETA, SimConfig
from corral.sim.claude_agents.ids import new_id

__all__ = ["ApiError", "check_request", "error_response"]

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or _STATUS_TYPES.get(status, "api_error")


def error_response(exc: ApiError) -> JSONResponse:
    request_id = new_id("req")
    body = {
        "type": "error",
        "error": {"type": exc.error_type, "message": exc.message},
        "request_id": request_id,
    }
    return JSONResponse(body, status_code=exc.status, headers={"request-id": request_id})


def _api_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def check_request(request: Request, config: SimConfig) -> None:
    key = _api_key(request)
    if key is None:
        raise ApiError(401, "x-api-key header is required")
    if config.api_keys and key not in config.api_keys:
        raise ApiError(401, "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        raise ApiError(400, "anthropic-version: header is required")
    betas = {b.strip() for b in request.headers.get("anthropic-beta", "").split(",")}
    if BETA not in betas:
        raise ApiError(400, f"This endpoint requires the beta header 'anthropic-beta: {BETA}'")
