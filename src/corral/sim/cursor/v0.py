"""The legacy v0 API: polling only (no stream), over the same agents as v1.

Shapes from the v0 docs: launch ``{prompt, source: {repository, ref?}, model?}`` answers the
agent ``{id, name, status, source, target, createdAt}``; status comes from the latest run
(v0 has no CANCELLED: a stopped agent reads FINISHED); ``/conversation`` lists
``user_message``/``assistant_message`` entries.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from corral.sim.cursor.common import ApiError, authorize, read_json, state_of
from corral.sim.cursor.store import Agent

__all__ = ["routes"]


def _status(agent: Agent) -> str:
    run = agent.latest
    if run is None:
        return "CREATING"
    return "FINISHED" if run.status == "CANCELLED" else run.status


def _body(agent: Agent) -> dict[str, Any]:
    repo = agent.repos[0] if agent.repos else {}
    out: dict[str, Any] = {
        "id": agent.id,
        "name": agent.name,
        "status": _status(agent),
        "source": {"repository": repo.get("url", ""), "ref": repo.get("startingRef", "main")},
        "target": {"url": f"https://cursor.com/agents?id={agent.id}", "autoCreatePr": False},
        "createdAt": agent.created_at,
    }
    if agent.latest is not None and agent.latest.result:
        out["summary"] = agent.latest.result
    return out


async def _launch(request: Request) -> JSONResponse:
    from corral.sim.cursor.app import create_agent  # the v1 module imports this one

    authorize(request)
    state, body = state_of(request), await read_json(request)
    raw = body.get("source")
    source: dict[str, Any] = raw if isinstance(raw, dict) else {}
    repos = [{"url": source["repository"], "startingRef": source.get("ref") or "main"}]
    if not source.get("repository"):
        repos = []
    v1 = {"prompt": body.get("prompt"), "repos": repos, "name": body.get("name")}
    if isinstance(body.get("model"), str):
        v1["model"] = {"id": body["model"]}
    return JSONResponse(_body(create_agent(state, v1, None)))


async def _list(request: Request) -> JSONResponse:
    authorize(request)
    agents = list(state_of(request).store.agents.values())[::-1]
    return JSONResponse({"agents": [_body(a) for a in agents]})


async def _get(request: Request) -> JSONResponse:
    authorize(request)
    return JSONResponse(_body(state_of(request).agent(request.path_params["agent_id"])))


async def _conversation(request: Request) -> JSONResponse:
    authorize(request)
    agent = state_of(request).agent(request.path_params["agent_id"])
    messages: list[dict[str, str]] = []
    for run in agent.runs:
        messages.append({"id": f"{run.id}:user", "type": "user_message", "text": run.prompt})
        if run.result:
            messages.append(
                {"id": f"{run.id}:assistant", "type": "assistant_message", "text": run.result}
            )
    return JSONResponse({"id": agent.id, "messages": messages})


async def _followup(request: Request) -> JSONResponse:
    from corral.sim.cursor.app import prompt_text, start_run

    authorize(request)
    state, body = state_of(request), await read_json(request)
    agent = state.agent(request.path_params["agent_id"])
    start_run(state, agent, prompt_text(body), None)
    return JSONResponse({"id": agent.id})


async def _stop(request: Request) -> JSONResponse:
    authorize(request)
    state = state_of(request)
    agent = state.agent(request.path_params["agent_id"])
    if agent.latest is None or agent.latest.finished_mono is not None:
        raise ApiError(409, "agent_not_running", "Agent is not running")
    await state.engine.cancel(agent.latest)
    return JSONResponse({"id": agent.id})


async def _delete(request: Request) -> JSONResponse:
    authorize(request)
    state = state_of(request)
    agent = state.agent(request.path_params["agent_id"])
    if agent.busy and agent.latest is not None:
        await state.engine.cancel(agent.latest)
    del state.store.agents[agent.id]
    return JSONResponse({"id": agent.id})


async def _me(request: Request) -> JSONResponse:
    authorize(request)
    return JSONResponse({"apiKeyName": "corral-sim", "userEmail": "sim@cursor.invalid"})


async def _models(request: Request) -> JSONResponse:
    authorize(request)
    return JSONResponse({"models": [m["id"] for m in state_of(request).config.models]})


async def _repositories(request: Request) -> JSONResponse:
    authorize(request)
    repos = [
        {"owner": "corral", "name": "sim-repo", "repository": "https://github.com/corral/sim-repo"}
    ]
    return JSONResponse({"repositories": repos})


def routes() -> list[Route]:
    a = "/v0/agents/{agent_id}"
    return [
        Route("/v0/agents", _launch, methods=["POST"]),
        Route("/v0/agents", _list, methods=["GET"]),
        Route(a, _get, methods=["GET"]),
        Route(a, _delete, methods=["DELETE"]),
        Route(a + "/conversation", _conversation),
        Route(a + "/followup", _followup, methods=["POST"]),
        Route(a + "/stop", _stop, methods=["POST"]),
        Route("/v0/me", _me),
        Route("/v0/models", _models),
        Route("/v0/repositories", _repositories),
    ]
