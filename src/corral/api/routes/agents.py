"""Agents: define, version, pause and resume, delete."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response, status

from corral.api.deps import Caller, Svc
from corral.api.schemas.agents import Agent, AgentCreate, AgentUpdate, AgentVersion
from corral.api.schemas.common import PageOut
from corral.domain.errors import InvalidRequest
from corral.fleet.agents import AgentFields

router = APIRouter(prefix="/v1/agents", tags=["agents"])


@router.post("", response_model=Agent, status_code=status.HTTP_201_CREATED)
async def create_agent(body: AgentCreate, who: Caller, svc: Svc) -> Agent:
    team_id = body.team_id or who.team_id
    if team_id is None:
        raise InvalidRequest("team_id is required for callers without a team", code="team_required")
    fields = AgentFields(
        name=body.name,
        runtime_id=body.runtime_id,
        model=body.model,
        instructions=body.instructions,
        tools=body.tools,
        metadata=body.metadata,
    )
    return Agent.model_validate(await svc.agents.create(who, team_id, fields))


@router.get("", response_model=PageOut[Agent])
async def list_agents(
    who: Caller,
    svc: Svc,
    team_id: str | None = Query(default=None, max_length=40),
    runtime_id: str | None = Query(default=None, max_length=40),
    name: str | None = Query(default=None, max_length=200),
    cursor: str | None = Query(default=None, max_length=500),
    limit: int | None = Query(default=None, ge=1, le=200),
) -> PageOut[Agent]:
    page = await svc.agents.list_agents(
        who, team_id=team_id, runtime_id=runtime_id, name=name, cursor=cursor, limit=limit
    )
    return PageOut[Agent](
        data=[Agent.model_validate(a) for a in page.items], next_cursor=page.next_cursor
    )


@router.get("/{agent_id}", response_model=Agent)
async def get_agent(
    agent_id: str,
    who: Caller,
    svc: Svc,
    version: int | None = Query(default=None, ge=1, le=1_000_000),
) -> Agent:
    return Agent.model_validate(await svc.agents.get(who, agent_id, version))


@router.get("/{agent_id}/versions", response_model=list[AgentVersion])
async def list_versions(agent_id: str, who: Caller, svc: Svc) -> list[AgentVersion]:
    return [AgentVersion.model_validate(v) for v in await svc.agents.versions(who, agent_id)]


@router.patch("/{agent_id}", response_model=Agent)
async def update_agent(agent_id: str, body: AgentUpdate, who: Caller, svc: Svc) -> Agent:
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidRequest("nothing to update", code="empty_update")
    cleared = [
        k
        for k in ("name", "runtime_id", "tools", "metadata")
        if k in changes and changes[k] is None
    ]
    if cleared:
        raise InvalidRequest(f"{cleared[0]} cannot be null")
    return Agent.model_validate(await svc.agents.update(who, agent_id, changes))


@router.post("/{agent_id}/pause", response_model=Agent)
async def pause_agent(agent_id: str, who: Caller, svc: Svc) -> Agent:
    return Agent.model_validate(await svc.agents.set_paused(who, agent_id, True))


@router.post("/{agent_id}/resume", response_model=Agent)
async def resume_agent(agent_id: str, who: Caller, svc: Svc) -> Agent:
    return Agent.model_validate(await svc.agents.set_paused(who, agent_id, False))


@router.delete("/{agent_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_agent(agent_id: str, who: Caller, svc: Svc) -> Response:
    await svc.agents.delete(who, agent_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
