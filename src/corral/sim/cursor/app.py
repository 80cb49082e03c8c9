"""HTTP routes of the simulated Cursor Cloud Agents API, v1 (the v0 routes live in ``v0``).

Routes parse, check and render; the engine runs the agent. Faithful details the official
``@cursor/sdk`` relies on: ``POST /v1/agents`` echoes the client-minted ``agentId``
(``bc-<uuid>``) and answers ``{agent, run}``; a second create with the same id is 409
``agent_id_conflict``; a follow-up while a run is active is 409 ``agent_busy``; cancelling a
finished run is 409 ``run_not_cancellable``; ``/auth/exchange_user_api_key`` is not served
(404, which the SDK tolerates).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from corral.sim.cursor import v0
from corral.sim.cursor.common import ApiError, authorize, error_response, read_json, state_of
from corral.sim.cursor.config import SimConfig
from corral.sim.cursor.engine import Engine
from corral.sim.cursor.store import Agent, Store, iso_now
from corral.sim.cursor.stream import stream_run

__all__ = ["SimState", "create_app"]

_AGENT_ID = re.compile(r"^bc-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


class SimState:
    """Everything one simulated instance holds; hung on ``app.state.sim`` for tests."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.store = Store()
        self.engine = Engine(config)

    def agent(self, agent_id: str) -> Agent:
        agent = self.store.agents.get(agent_id)
        if agent is None:
            raise ApiError(404, "not_found", f"Agent {agent_id} not found")
        return agent

    def model_id(self, body: dict[str, Any]) -> str | None:
        model = body.get("model")
        if model is None:
            return None
        wanted = model.get("id") if isinstance(model, dict) else model
        for item in self.config.models:
            if wanted == item["id"] or wanted in (item.get("aliases") or []):  # type: ignore[operator]
                return str(item["id"])
        raise ApiError(400, "invalid_model", f"Model '{wanted}' is not available")


def prompt_text(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    text = prompt.get("text") if isinstance(prompt, dict) else None
    if not isinstance(text, str) or not text:
        raise ApiError(400, "invalid_request", "prompt.text is required")
    return text


def start_run(state: SimState, agent: Agent, text: str, model: str | None) -> dict[str, Any]:
    if agent.archived:
        raise ApiError(409, "agent_archived", "Agent is archived")
    if agent.busy:
        raise ApiError(409, "agent_busy", "Agent already has an active run")
    run = state.store.new_run(agent, text, model or agent.model)
    state.engine.start(agent, run)
    return run.body()


def create_agent(state: SimState, body: dict[str, Any], agent_id: str | None) -> Agent:
    text = prompt_text(body)
    if agent_id is None:
        agent_id = f"bc-{uuid.uuid4()}"
    elif not isinstance(agent_id, str) or not _AGENT_ID.match(agent_id):
        raise ApiError(400, "invalid_request", "agentId must be in the format 'bc-<uuid>'")
    if agent_id in state.store.agents:
        raise ApiError(409, "agent_id_conflict", f"Agent {agent_id} already exists")
    raw_repos, raw_meta = body.get("repos"), body.get("metadata")
    repos = [r for r in raw_repos if isinstance(r, dict)] if isinstance(raw_repos, list) else []
    metadata = raw_meta if isinstance(raw_meta, dict) else {}
    model = state.model_id(body)
    agent = Agent(
        id=agent_id,
        name=str(body.get("name") or text[:60]),
        repos=repos,
        metadata={str(k): str(v) for k, v in metadata.items()},
        model=model,
        files=dict(state.config.files),
    )
    state.store.agents[agent_id] = agent
    start_run(state, agent, text, model)
    return agent


async def _create_agent(request: Request) -> JSONResponse:
    authorize(request)
    state, body = state_of(request), await read_json(request)
    agent = create_agent(state, body, body.get("agentId"))
    run = agent.latest
    assert run is not None
    return JSONResponse({"agent": agent.body(), "run": run.body()})


async def _list_agents(request: Request) -> JSONResponse:
    authorize(request)
    state = state_of(request)
    archived = request.query_params.get("includeArchived") == "true"
    items = [a.body() for a in state.store.agents.values() if archived or not a.archived]
    limit = int(request.query_params.get("limit") or 100)
    return JSONResponse({"items": items[::-1][:limit]})


async def _get_agent(request: Request) -> JSONResponse:
    authorize(request)
    return JSONResponse(state_of(request).agent(request.path_params["agent_id"]).body())


async def _archive(request: Request) -> JSONResponse:
    authorize(request)
    agent = state_of(request).agent(request.path_params["agent_id"])
    agent.archived = request.url.path.endswith("/archive")
    agent.updated_at = iso_now()
    return JSONResponse({"id": agent.id})


async def _delete_agent(request: Request) -> JSONResponse:
    authorize(request)
    state = state_of(request)
    agent = state.agent(request.path_params["agent_id"])
    if agent.busy and agent.latest is not None:
        await state.engine.cancel(agent.latest)
    del state.store.agents[agent.id]
    return JSONResponse({"id": agent.id})


async def _create_run(request: Request) -> JSONResponse:
    authorize(request)
    state, body = state_of(request), await read_json(request)
    agent = state.agent(request.path_params["agent_id"])
    run = start_run(state, agent, prompt_text(body), state.model_id(body))
    return JSONResponse({"run": run})


async def _list_runs(request: Request) -> JSONResponse:
    authorize(request)
    agent = state_of(request).agent(request.path_params["agent_id"])
    return JSONResponse({"items": [r.body() for r in reversed(agent.runs)]})


def _run_of(request: Request) -> Any:
    state = state_of(request)
    agent = state.agent(request.path_params["agent_id"])
    for run in agent.runs:
        if run.id == request.path_params["run_id"]:
            return run
    raise ApiError(404, "not_found", "Run not found")


async def _get_run(request: Request) -> JSONResponse:
    authorize(request)
    return JSONResponse(_run_of(request).body())


async def _cancel_run(request: Request) -> JSONResponse:
    authorize(request)
    run = _run_of(request)
    if run.finished_mono is not None:
        raise ApiError(409, "run_not_cancellable", f"Run is {run.status}")
    await state_of(request).engine.cancel(run)
    return JSONResponse({"id": run.id})


def _tokens(usage: dict[str, int]) -> dict[str, int]:
    inp, out = int(usage.get("inputTokens", 0)), int(usage.get("outputTokens", 0))
    return {
        "inputTokens": inp,
        "outputTokens": out,
        "cacheWriteTokens": 0,
        "cacheReadTokens": 0,
        "totalTokens": inp + out,
    }


async def _usage(request: Request) -> JSONResponse:
    authorize(request)
    agent = state_of(request).agent(request.path_params["agent_id"])
    wanted = request.query_params.get("runId")
    runs = [r for r in agent.runs if wanted in (None, r.id)]
    total = {"inputTokens": 0, "outputTokens": 0}
    for run in runs:
        for key in total:
            total[key] += int(run.usage.get(key, 0))
    items = [{"id": r.id, "usage": _tokens(r.usage)} for r in runs]
    return JSONResponse({"totalUsage": _tokens(total), "runs": items})


async def _artifacts(request: Request) -> JSONResponse:
    authorize(request)
    state_of(request).agent(request.path_params["agent_id"])
    return JSONResponse({"items": []})


async def _me(request: Request) -> JSONResponse:
    authorize(request)
    return JSONResponse(
        {"apiKeyName": "corral-sim", "userEmail": "sim@cursor.invalid", "createdAt": iso_now()}
    )


async def _models(request: Request) -> JSONResponse:
    authorize(request)
    return JSONResponse({"items": state_of(request).config.models})


async def _repositories(request: Request) -> JSONResponse:
    authorize(request)
    return JSONResponse({"items": [{"url": "https://github.com/corral/sim-repo"}]})


async def _not_served(request: Request) -> Response:
    # api.cursor.com does not exchange API keys; the SDK treats this 404 as "no access token".
    return error_response(ApiError(404, "not_found", "Not found"))


async def _drop_streams(request: Request) -> JSONResponse:
    """Test hook, not part of Cursor's API: cut every open stream without ``done``."""
    state_of(request).store.drop_streams()
    return JSONResponse({"dropped": True})


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


def create_app(config: SimConfig | None = None) -> Starlette:
    state = SimState(config or SimConfig())
    a = "/v1/agents/{agent_id}"
    r = a + "/runs/{run_id}"
    routes = [
        Route("/auth/exchange_user_api_key", _not_served, methods=["POST"]),
        Route("/v1/me", _me),
        Route("/v1/models", _models),
        Route("/v1/repositories", _repositories),
        Route("/v1/agents", _create_agent, methods=["POST"]),
        Route("/v1/agents", _list_agents, methods=["GET"]),
        Route(a, _get_agent, methods=["GET"]),
        Route(a, _delete_agent, methods=["DELETE"]),
        Route(a + "/archive", _archive, methods=["POST"]),
        Route(a + "/unarchive", _archive, methods=["POST"]),
        Route(a + "/runs", _create_run, methods=["POST"]),
        Route(a + "/runs", _list_runs, methods=["GET"]),
        Route(a + "/usage", _usage),
        Route(a + "/artifacts", _artifacts),
        Route(r, _get_run),
        Route(r + "/cancel", _cancel_run, methods=["POST"]),
        Route(r + "/stream", stream_run),
        Route("/__sim/drop_streams", _drop_streams, methods=["POST"]),
        *v0.routes(),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await state.engine.aclose()

    app = Starlette(routes=routes, exception_handlers={ApiError: _api_error}, lifespan=lifespan)
    app.state.sim = state
    return app
