"""Request dependencies: the services container and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from corral.audit import context as audit_context
from corral.domain.errors import InvalidRequest, Unauthenticated
from corral.identity.authz import Principal
from corral.services import Services
from corral.sessions.service import Idempotency, request_hash


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def principal(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    if not authorization:
        raise Unauthenticated("send 'Authorization: Bearer ck_...'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send 'Authorization: Bearer ck_...'")
    who = await services(request).identity.authenticate(token.strip())
    audit_context.set_actor(who)  # whatever this request causes is recorded as theirs
    return who


def idempotency(key: str | None, body: object) -> Idempotency | None:
    if key is None:
        return None
    if not 1 <= len(key) <= 200:
        raise InvalidRequest(
            "Idempotency-Key must be 1 to 200 characters", code="invalid_idempotency_key"
        )
    return Idempotency(key, request_hash(body))


Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]
