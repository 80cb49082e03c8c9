"""Each request's id (``X-Request-ID``, taken from the caller or made here, echoed back), and
the audit record of a request that Corral refused or failed.

The id is set before anything else runs, so every audit record the request causes carries it.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import replace

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corral.audit import context
from corral.audit.record import ActorType, AuditOutcome, entry
from corral.domain.errors import CorralError, Forbidden, GovernanceDenied, Unauthenticated

log = logging.getLogger(__name__)

HEADER = "X-Request-ID"
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def _request_id(scope: Scope) -> str:
    given = dict(scope.get("headers") or []).get(HEADER.lower().encode(), b"")
    text = given.decode("latin-1")
    return text if _ACCEPTED.fullmatch(text) else "req_" + os.urandom(12).hex()


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        context.begin_request(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers.append((HEADER.lower().encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


def _refusal(exc: CorralError) -> bool:
    if isinstance(exc, GovernanceDenied | Forbidden):
        return True
    # Only a known key's refusal names someone; a made-up key is noise, not an actor.
    return isinstance(exc, Unauthenticated) and "key_id" in exc.extra


async def audit_refusal(request: Request, exc: Exception, status: int) -> None:
    """Record a request refused by governance or authorization, or failed (5xx) while writing.

    Written before the response goes out (committed with whatever is queued), so a refusal
    the caller saw is always in the trail. A failure to record is logged, never raised.
    """
    refused = isinstance(exc, CorralError) and _refusal(exc)
    if not refused and (status < 500 or request.method in ("GET", "HEAD", "OPTIONS")):
        return
    services = getattr(request.app.state, "services", None)
    if services is None:
        return
    extra = exc.extra if isinstance(exc, CorralError) else {}
    who = context.actor()
    details = {
        "method": request.method, "path": request.url.path, "status": status,
        "code": getattr(exc, "code", "internal"),
        "reason": exc.detail if isinstance(exc, CorralError) else "internal error",
        "scope": extra.get("scope"), "epoch": extra.get("epoch"),
    }  # fmt: skip
    item = entry(
        "request.refused" if refused else "request.failed",
        ("request", context.request_id()), actor=who,
        org_id=who.org_id if who else extra.get("org_id"),
        team_id=who.team_id if who else extra.get("team_id"),
        actor_type=ActorType.KEY if who or "key_id" in extra else ActorType.SYSTEM,
        decision="deny" if refused else None,
        policy=(extra.get("policy_id"), extra.get("policy_version")),
        outcome=AuditOutcome.DENIED if refused else AuditOutcome.ERROR,
        details={k: v for k, v in details.items() if v is not None},
    )  # fmt: skip
    if who is None and "key_id" in extra:
        item = replace(item, key_id=extra["key_id"], user_id=extra.get("user_id"),
                       role=str(extra["role"]) if extra.get("role") else None)  # fmt: skip
    try:
        await services.audit.queue.submit(item)
    except Exception:
        log.exception("recording a refused request failed")
