"""Gateway administration (upstreams, model routes), usage, and session keys.

The model APIs themselves (``/v1/chat/completions``, ``/v1/responses``, ``/v1/messages``,
``/v1/models``) are served by the gateway ahead of this app: see ``api/gateway_paths.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Path, Query, Request, Response, status

from corral.api.deps import Caller, Svc
from corral.api.schemas.common import PageOut
from corral.api.schemas.gateway import (
    CallOut,
    ModelCreate,
    ModelOut,
    ModelPut,
    SessionKeyOut,
    UpstreamCreate,
    UpstreamOut,
    UpstreamUpdate,
    UsageOut,
    call_out,
    usage_row,
)
from corral.identity.authz import Action

router = APIRouter(tags=["gateway"])

Ref = Path(min_length=1, max_length=200, description="Name or id.")
ModelName = Path(min_length=1, max_length=200, description="The model name callers use.")


@router.get("/v1/gateway/upstreams", response_model=PageOut[UpstreamOut])
async def list_upstreams(who: Caller, svc: Svc) -> PageOut[UpstreamOut]:
    """Where model calls go (keys are never shown: `has_key` says whether one is set)."""
    items = await svc.gateway_admin.list_upstreams(who)
    return PageOut[UpstreamOut](data=[UpstreamOut.model_validate(u) for u in items],
                                next_cursor=None)  # fmt: skip


@router.post("/v1/gateway/upstreams", status_code=201, response_model=UpstreamOut)
async def create_upstream(body: UpstreamCreate, who: Caller, svc: Svc) -> UpstreamOut:
    """Add an upstream (admins); its API key is sealed in the vault."""
    upstream = await svc.gateway_admin.create_upstream(
        who, name=body.name, kind=body.kind, base_url=body.base_url, api_key=body.api_key,
        timeout_seconds=body.timeout_seconds, headers=body.headers,
    )  # fmt: skip
    return UpstreamOut.model_validate(upstream)


@router.patch("/v1/gateway/upstreams/{ref}", response_model=UpstreamOut)
async def update_upstream(
    body: UpstreamUpdate, who: Caller, svc: Svc, ref: str = Ref
) -> UpstreamOut:
    """Change an upstream's URL, key (an empty string removes it), timeout or headers."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("api_key") == "":
        changes["api_key"] = None
    upstream = await svc.gateway_admin.update_upstream(who, ref, changes)
    return UpstreamOut.model_validate(upstream)


@router.delete("/v1/gateway/upstreams/{ref}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_upstream(who: Caller, svc: Svc, ref: str = Ref) -> Response:
    """Remove an upstream no model targets any more (409 `upstream_in_use` otherwise)."""
    await svc.gateway_admin.delete_upstream(who, ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/v1/gateway/models", response_model=PageOut[ModelOut])
async def list_models(who: Caller, svc: Svc) -> PageOut[ModelOut]:
    """The model names callers may use, with their targets in fallback order."""
    items = await svc.gateway_admin.list_models(who)
    return PageOut[ModelOut](data=[ModelOut.model_validate(m) for m in items], next_cursor=None)


@router.post("/v1/gateway/models", status_code=201, response_model=ModelOut)
async def create_model(body: ModelCreate, who: Caller, svc: Svc) -> ModelOut:
    """Route a model name (and its aliases) to upstream targets (admins)."""
    route = await svc.gateway_admin.put_model(
        who, name=body.name, targets=[(t.upstream, t.model) for t in body.targets],
        aliases=body.aliases, max_output_tokens=body.max_output_tokens, create_only=True,
    )  # fmt: skip
    return ModelOut.model_validate(route)


@router.put("/v1/gateway/models/{name}", response_model=ModelOut)
async def put_model(body: ModelPut, who: Caller, svc: Svc, name: str = ModelName) -> ModelOut:
    """Create or replace the route of a model name."""
    route = await svc.gateway_admin.put_model(
        who, name=name, targets=[(t.upstream, t.model) for t in body.targets],
        aliases=body.aliases, max_output_tokens=body.max_output_tokens, create_only=False,
    )  # fmt: skip
    return ModelOut.model_validate(route)


@router.delete("/v1/gateway/models/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_model(who: Caller, svc: Svc, name: str = ModelName) -> Response:
    await svc.gateway_admin.delete_model(who, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _filters(**values: str | None) -> dict[str, str]:
    return {k: v for k, v in values.items() if v}


@router.get("/v1/usage", response_model=UsageOut)
async def usage(
    who: Caller,
    svc: Svc,
    group_by: str = Query(
        default="model",
        max_length=200,
        description="Comma-separated: model, key_id, session_id, agent_id, "
        "team_id, user_id, upstream_id, outcome, api, day.",
    ),
    since: datetime | None = Query(default=None, description="Default: the last 30 days."),
    until: datetime | None = None,
    model: str | None = Query(default=None, max_length=200),
    key_id: str | None = Query(default=None, max_length=40),
    session_id: str | None = Query(default=None, max_length=40),
    agent_id: str | None = Query(default=None, max_length=40),
    team_id: str | None = Query(default=None, max_length=40),
    user_id: str | None = Query(default=None, max_length=40),
    outcome: str | None = Query(default=None, max_length=20),
    limit: int | None = Query(default=None, ge=1, le=1000),
) -> UsageOut:
    """Model calls through the gateway: calls, errors, tokens, cost and latency per group."""
    groups = [g.strip() for g in group_by.split(",") if g.strip()]
    filters = _filters(model=model, key_id=key_id, session_id=session_id, agent_id=agent_id,
                       team_id=team_id, user_id=user_id, outcome=outcome)  # fmt: skip
    rows = await svc.gateway_admin.usage(
        who, group_by=groups, filters=filters, since=since, until=until, limit=limit
    )
    return UsageOut(group_by=groups, since=since, until=until, data=[usage_row(r) for r in rows])


@router.get("/v1/usage/calls", response_model=PageOut[CallOut])
async def calls(
    who: Caller,
    svc: Svc,
    model: str | None = Query(default=None, max_length=200),
    key_id: str | None = Query(default=None, max_length=40),
    session_id: str | None = Query(default=None, max_length=40),
    agent_id: str | None = Query(default=None, max_length=40),
    outcome: str | None = Query(default=None, max_length=20),
    limit: int | None = Query(default=None, ge=1, le=500),
) -> PageOut[CallOut]:
    """The most recent model calls, newest first, one record each."""
    filters = _filters(model=model, key_id=key_id, session_id=session_id, agent_id=agent_id,
                       outcome=outcome)  # fmt: skip
    rows = await svc.gateway_admin.calls(who, filters, limit)
    return PageOut[CallOut](data=[call_out(r) for r in rows], next_cursor=None)


@router.post("/v1/sessions/{session_id}/gateway-key", status_code=201, response_model=SessionKeyOut)
async def session_key(session_id: str, request: Request, who: Caller, svc: Svc) -> SessionKeyOut:
    """Mint a short-lived key for one session's model calls (hand it to the runtime): every
    call made with it is attributed to the session and its agent, and shows on the session as
    a `usage` event."""
    session = await svc.sessions.get(who, session_id, Action.SESSIONS_WRITE)
    lifetime = timedelta(hours=svc.settings.gateway_session_key_hours)
    issued = await svc.identity.issue_session_key(who, session, lifetime)
    base = (svc.settings.gateway_public_url or str(request.base_url)).rstrip("/")
    assert issued.key.expires_at is not None
    return SessionKeyOut(
        key=issued.plaintext, key_id=issued.key.id, session_id=session.id,
        agent_id=session.agent_id, expires_at=issued.key.expires_at,
        openai_base_url=f"{base}/v1", anthropic_base_url=base,
    )  # fmt: skip
