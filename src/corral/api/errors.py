"""Every error becomes RFC 9457 problem+json here, once, with a stable ``code``.

Validation messages never echo the submitted values: a body that fails validation may hold
credentials.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from corral.api.request_context import audit_refusal
from corral.domain.errors import CorralError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_SAFE_EXTRAS = (
    "session_id",
    "http_status",
    # governance denials name what refused them
    "scope",
    "policy_id",
    "policy_version",
    "epoch",
    "retry_after",
)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def problem(
    status: int, code: str, title: str, detail: str, instance: str, **extra: Any
) -> JSONResponse:
    body = {
        "type": f"https://corral.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if extra.get("retry_after") is not None:
        headers = {"Retry-After": str(extra["retry_after"])}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def _corral_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CorralError)
    extra = {k: v for k, v in exc.extra.items() if k in _SAFE_EXTRAS}
    if exc.status >= 500:
        log.warning("%s %s -> %s: %s", request.method, request.url.path, exc.code, exc.detail)
    await audit_refusal(request, exc, exc.status)
    return problem(exc.status, exc.code, exc.title, exc.detail, request.url.path, **extra)


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    return [
        {
            "loc": list(e.get("loc", ())),
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _clean_errors(exc.errors())
    if any(e["type"] == "json_invalid" for e in errors):
        return problem(
            400,
            "malformed_json",
            "Malformed JSON",
            "request body is not valid JSON",
            request.url.path,
        )
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    detail = f"{where}: {first['msg']}" if where else str(first["msg"])
    return problem(422, "validation", "Invalid request", detail, request.url.path, errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    title = code.replace("_", " ").capitalize()
    return problem(exc.status_code, code, title, str(exc.detail), request.url.path)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    await audit_refusal(request, exc, 500)
    return problem(
        500, "internal", "Internal error", "an unexpected error occurred", request.url.path
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(CorralError, _corral_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
