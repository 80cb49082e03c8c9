"""HTTP routes of the simulated Claude Managed Agents API (the ``/v1`` beta surface).

Routes parse, delegate to the store and engine, and render; every error goes through the
Anthropic envelope in :mod:`errors`. Unknown query parameters (``?beta=true`` from SDK 1.17)
are ignored. The stream is SSE with ``event:`` and ``data:`` lines, ``event: ping`` keepalives,
and no replay: a client reconnects by re-opening it and backfilling from the event list.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from corral.sim.claude_agents.config import SimConfig
from corral.sim.claude_agents.engine import Engine
from corral.sim.claude_agents.errors import ApiError, check_request, error_response
from corral.sim.claude_agents.ids import now_iso
from corral.sim.claude_agents.store import CLOSE, Json, SessionRecord, Store, Stream, paginate

__all__ = ["SimState", "create_app"]


class SimState:
    """Everything one simulated service holds; hung on ``app.state.sim`` for tests."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.store = Store()
        self.engine = Engine(config)
        #: Fault hook: the next stream opened starts with these raw SSE frames (then forgets
        #: them), e.g. a garbled ``data:`` line or an ``event: error`` frame.
        self.inject_frames: list[str] = []
        #: What each request looked like (method, path, auth style, version, accept), so tests
        #: can assert which headers a client really sent. Never the key itself.
        self.requests: list[dict[str, str]] = []

    def drop_streams(self, session_id: str | None = None) -> int:
        """Close live streams (all, or one session's), as a network cut would; returns how many."""
        dropped = 0
        for session in self.store.sessions.values():
            if session_id is None or session.id == session_id:
                for stream in list(session.streams):
                    stream.close_soon()
                    dropped += 1
        return dropped


def _sim(request: Request) -> SimState:
    state: SimState = request.app.state.sim
    return state


async def _body(request: Request) -> Json:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "There was an issue with the JSON body of your request") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object")
    return body


def _limit(request: Request, default: int = 20) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise ApiError(400, "limit: must be between 1 and 1000")
    return int(raw)


def _list(request: Request, items: list[Json]) -> Response:
    if request.query_params.get("include_archived") not in ("true", "1"):
        items = [i for i in items if not i.get("archived_at")]
    return JSONResponse(paginate(items, _limit(request), request.query_params.get("page")))


def _session(request: Request) -> SessionRecord:
    return _sim(request).store.session(request.path_params["session_id"])


# -- agents ------------------------------------------------------------------------------
async def create_agent(request: Request) -> Response:
    return JSONResponse(_sim(request).store.create_agent(await _body(request)))


async def list_agents(request: Request) -> Response:
    agents = [versions[-1] for versions in _sim(request).store.agents.values()]
    return _list(request, agents)


async def get_agent(request: Request) -> Response:
    raw = request.query_params.get("version")
    version = int(raw) if raw and raw.isdigit() else None
    return JSONResponse(_sim(request).store.agent(request.path_params["agent_id"], version))


async def update_agent(request: Request) -> Response:
    store = _sim(request).store
    return JSONResponse(store.update_agent(request.path_params["agent_id"], await _body(request)))


async def archive_agent(request: Request) -> Response:
    agent = _sim(request).store.agent(request.path_params["agent_id"])
    agent["archived_at"] = now_iso()
    return JSONResponse(agent)


async def agent_versions(request: Request) -> Response:
    store = _sim(request).store
    store.agent(request.path_params["agent_id"])
    versions = list(reversed(store.agents[request.path_params["agent_id"]]))
    return JSONResponse(paginate(versions, _limit(request), request.query_params.get("page")))


# -- environments ----------------------------------------------------------------------------
async def create_environment(request: Request) -> Response:
    return JSONResponse(_sim(request).store.create_environment(await _body(request)))


async def list_environments(request: Request) -> Response:
    return _list(request, list(_sim(request).store.environments.values()))


async def get_environment(request: Request) -> Response:
    return JSONResponse(_sim(request).store.environment(request.path_params["environment_id"]))


async def delete_environment(request: Request) -> Response:
    store = _sim(request).store
    env = store.environment(request.path_params["environment_id"])
    del store.environments[env["id"]]
    return JSONResponse({"id": env["id"], "type": "environment_deleted"})


async def archive_environment(request: Request) -> Response:
    env = _sim(request).store.environment(request.path_params["environment_id"])
    env["archived_at"] = now_iso()
    return JSONResponse(env)


# -- sessions --------------------------------------------------------------------------------
async def create_session(request: Request) -> Response:
    sim = _sim(request)
    body = await _body(request)
    session = sim.store.create_session(body)
    initial = body.get("initial_events") or []
    if initial:
        sim.engine.submit(session, list(initial))
    return JSONResponse(session.info)


async def list_sessions(request: Request) -> Response:
    sessions = [s.info for s in _sim(request).store.sessions.values()]
    return _list(request, list(reversed(sessions)))


async def get_session(request: Request) -> Response:
    return JSONResponse(_session(request).info)


async def update_session(request: Request) -> Response:
    session = _session(request)
    body = await _body(request)
    for key in ("title", "metadata"):
        if key in body:
            session.info[key] = body[key]
    session.info["updated_at"] = now_iso()
    return JSONResponse(session.info)


async def delete_session(request: Request) -> Response:
    sim = _sim(request)
    session = _session(request)
    sim.engine.forget(session)
    session.emit(
        {"id": f"sevt_deleted_{session.id}", "type": "session.deleted", "processed_at": now_iso()}
    )
    del sim.store.sessions[session.id]
    return JSONResponse({"id": session.id, "type": "session_deleted"})


async def archive_session(request: Request) -> Response:
    session = _session(request)
    session.info["archived_at"] = now_iso()
    return JSONResponse(session.info)


# -- events ------------------------------------------------------------------------------------
async def send_events(request: Request) -> Response:
    session = _session(request)
    events = (await _body(request)).get("events")
    if not isinstance(events, list) or not events or not all(isinstance(e, dict) for e in events):
        raise ApiError(400, "events: Field required")
    if session.info["status"] == "terminated":
        raise ApiError(400, "session is terminated")
    return JSONResponse({"data": _sim(request).engine.submit(session, events)})


def _multi(request: Request, name: str) -> list[str]:
    """A repeated query parameter in either spelling (``name`` or ``name[]``)."""
    values: list[str] = []
    for key in (name, f"{name}[]"):
        for value in request.query_params.getlist(key):
            values.extend(v for v in value.split(",") if v)
    return values


def _time_filter(request: Request, events: list[Json]) -> list[Json]:
    tests: list[Callable[[str], bool]] = []
    for op, check in (
        ("gt", lambda a, b: a > b),
        ("gte", lambda a, b: a >= b),
        ("lt", lambda a, b: a < b),
        ("lte", lambda a, b: a <= b),
    ):
        bound = request.query_params.get(f"created_at[{op}]")
        if bound:
            tests.append(lambda ts, b=bound, c=check: c(ts, b))  # type: ignore[misc]
    if not tests:
        return events
    return [e for e in events if e.get("processed_at") and all(t(e["processed_at"]) for t in tests)]


async def list_events(request: Request) -> Response:
    session = _session(request)
    events = list(session.events)
    types = set(_multi(request, "types"))
    if types:
        events = [e for e in events if e["type"] in types]
    events = _time_filter(request, events)
    order = request.query_params.get("order", "asc")
    if order not in ("asc", "desc"):
        raise ApiError(400, "order: Input should be 'asc' or 'desc'")
    if order == "desc":
        events.reverse()
    return JSONResponse(paginate(events, _limit(request), request.query_params.get("page")))


def _frame(event: Json) -> bytes:
    data = json.dumps(event, separators=(",", ":"))
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


async def stream_events(request: Request) -> Response:
    sim = _sim(request)
    session = _session(request)
    # Registered before the response starts: an event emitted once the client has its
    # headers is never missed.
    stream = Stream(
        deltas=frozenset(_multi(request, "event_deltas")), loop=asyncio.get_running_loop()
    )
    session.streams.add(stream)
    injected, sim.inject_frames = sim.inject_frames, []

    async def frames() -> AsyncIterator[bytes]:
        try:
            for raw in injected:
                yield raw.encode()
            while True:
                try:
                    event = await asyncio.wait_for(stream.queue.get(), sim.config.ping_interval)
                except TimeoutError:
                    yield b'event: ping\ndata: {"type":"ping"}\n\n'
                    continue
                if event is CLOSE:
                    return
                yield _frame(event)
                if event["type"] == "session.deleted":
                    return
        finally:
            session.streams.discard(stream)

    headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(frames(), media_type="text/event-stream", headers=headers)


# -- plumbing ----------------------------------------------------------------------------------
Handler = Callable[[Request], Awaitable[Response]]


def _guard(handler: Handler) -> Handler:
    async def wrapper(request: Request) -> Response:
        headers = request.headers
        _sim(request).requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "auth": "x-api-key" if "x-api-key" in headers else "bearer",
                "version": headers.get("anthropic-version", ""),
                "accept": headers.get("accept", ""),
                "query": request.url.query,
            }
        )
        try:
            check_request(request, _sim(request).config)
            return await handler(request)
        except ApiError as exc:
            return error_response(exc)

    return wrapper


_ROUTES: list[tuple[str, Handler, list[str]]] = [
    ("/v1/agents", create_agent, ["POST"]),
    ("/v1/agents", list_agents, ["GET"]),
    ("/v1/agents/{agent_id}", get_agent, ["GET"]),
    ("/v1/agents/{agent_id}", update_agent, ["POST"]),
    ("/v1/agents/{agent_id}/archive", archive_agent, ["POST"]),
    ("/v1/agents/{agent_id}/versions", agent_versions, ["GET"]),
    ("/v1/environments", create_environment, ["POST"]),
    ("/v1/environments", list_environments, ["GET"]),
    ("/v1/environments/{environment_id}", get_environment, ["GET"]),
    ("/v1/environments/{environment_id}", delete_environment, ["DELETE"]),
    ("/v1/environments/{environment_id}/archive", archive_environment, ["POST"]),
    ("/v1/sessions", create_session, ["POST"]),
    ("/v1/sessions", list_sessions, ["GET"]),
    ("/v1/sessions/{session_id}", get_session, ["GET"]),
    ("/v1/sessions/{session_id}", update_session, ["POST"]),
    ("/v1/sessions/{session_id}", delete_session, ["DELETE"]),
    ("/v1/sessions/{session_id}/archive", archive_session, ["POST"]),
    ("/v1/sessions/{session_id}/events", send_events, ["POST"]),
    ("/v1/sessions/{session_id}/events", list_events, ["GET"]),
    ("/v1/sessions/{session_id}/events/stream", stream_events, ["GET"]),
]


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(ApiError(404, f"Not found: {request.url.path}"))


def create_app(config: SimConfig | None = None, *, llm_url: str | None = None) -> Starlette:
    """One simulated service. ``create_app(llm_url=URL)`` is enough to start one in-process."""
    if config is None:
        config = SimConfig(llm_url=llm_url) if llm_url else SimConfig()
    sim = SimState(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await sim.engine.close()

    routes = [Route(path, _guard(handler), methods=methods) for path, handler, methods in _ROUTES]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: _not_found})
    app.state.sim = sim
    return app
