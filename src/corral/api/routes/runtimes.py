"""Runtimes: register, inspect, and store credentials (write-only)."""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from corral.api.deps import Caller, Svc
from corral.api.schemas.common import PageOut
from corral.api.schemas.runtimes import (
    CredentialsPut,
    CredentialStatus,
    Runtime,
    RuntimeCreate,
    RuntimeHealth,
    RuntimeUpdate,
)
from corral.fleet.runtimes import RuntimeView

router = APIRouter(prefix="/v1/runtimes", tags=["runtimes"])


def _out(view: RuntimeView) -> Runtime:
    rt = view.runtime
    return Runtime(
        id=rt.id,
        name=rt.name,
        kind=rt.kind,
        base_url=rt.base_url,
        config=rt.config,
        capabilities=view.capabilities.as_dict(),
        credentials=[CredentialStatus.model_validate(c) for c in view.credentials],
        created_at=rt.created_at,
        updated_at=rt.updated_at,
    )


@router.post("", response_model=Runtime, status_code=status.HTTP_201_CREATED)
async def register_runtime(body: RuntimeCreate, who: Caller, svc: Svc) -> Runtime:
    view = await svc.runtimes.register(
        who, name=body.name, kind=body.kind, base_url=body.base_url, config=body.config
    )
    return _out(view)


@router.get("", response_model=PageOut[Runtime])
async def list_runtimes(
    who: Caller,
    svc: Svc,
    kind: str | None = Query(default=None, max_length=40),
    name: str | None = Query(default=None, max_length=200),
    cursor: str | None = Query(default=None, max_length=500),
    limit: int | None = Query(default=None, ge=1, le=200),
) -> PageOut[Runtime]:
    page = await svc.runtimes.list_runtimes(who, kind=kind, name=name, cursor=cursor, limit=limit)
    return PageOut[Runtime](data=[_out(v) for v in page.items], next_cursor=page.next_cursor)


@router.get("/{runtime_id}", response_model=Runtime)
async def get_runtime(runtime_id: str, who: Caller, svc: Svc) -> Runtime:
    return _out(await svc.runtimes.get(who, runtime_id))


@router.patch("/{runtime_id}", response_model=Runtime)
async def update_runtime(runtime_id: str, body: RuntimeUpdate, who: Caller, svc: Svc) -> Runtime:
    view = await svc.runtimes.update(
        who, runtime_id, name=body.name, base_url=body.base_url, config=body.config
    )
    return _out(view)


@router.put("/{runtime_id}/credentials", response_model=Runtime)
async def put_credentials(runtime_id: str, body: CredentialsPut, who: Caller, svc: Svc) -> Runtime:
    view = await svc.runtimes.put_credentials(
        who, runtime_id, body.credentials, team_id=body.team_id, agent_id=body.agent_id
    )
    return _out(view)


@router.delete("/{runtime_id}/credentials", response_model=Runtime)
async def delete_credentials(
    runtime_id: str,
    who: Caller,
    svc: Svc,
    team_id: str | None = Query(default=None, max_length=40),
    agent_id: str | None = Query(default=None, max_length=40),
) -> Runtime:
    view = await svc.runtimes.delete_credentials(
        who, runtime_id, team_id=team_id, agent_id=agent_id
    )
    return _out(view)


@router.get("/{runtime_id}/health", response_model=RuntimeHealth)
async def runtime_health(runtime_id: str, who: Caller, svc: Svc) -> RuntimeHealth:
    detail = await svc.runtimes.health(who, runtime_id)
    return RuntimeHealth(runtime_id=runtime_id, healthy=True, detail=detail)
