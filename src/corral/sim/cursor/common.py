"""Pieces every route module shares: the error envelope, auth, JSON bodies, state access."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from corral.sim.cursor.app import SimState

__all__ = ["ApiError", "authorize", "error_response", "read_json", "state_of"]


class ApiError(Exception):
    """Rendered as ``{"error": {"code", "message"}}``, the envelope the SDK reads codes from."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(exc: ApiError) -> JSONResponse:
    body = {"error": {"code": exc.code, "message": exc.message}}
    return JSONResponse(body, status_code=exc.status)


def state_of(request: Request) -> SimState:
    state: SimState = request.app.state.sim
    return state


def _key_of(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":  # the docs' form: the key as user name, empty password
        try:
            user = base64.b64decode(value.strip()).decode().partition(":")[0]
        except ValueError:
            return None
        return user or None
    return None


def authorize(request: Request) -> None:
    key = _key_of(request.headers.get("authorization", ""))
    allowed = state_of(request).config.api_keys
    if key is None or (allowed is not None and key not in allowed):
        raise ApiError(401, "unauthorized", "Invalid API key")


async def read_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "invalid_request", "Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "Request body must be a JSON object")
    return body
