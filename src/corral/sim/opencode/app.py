"""HTTP routes of the simulated ``opencode serve``.

Routes only parse, delegate to the store/engine/permissions and render. The error bodies
are the ones the real 1.18.33 server answers (probed directly): ``NotFoundError`` 404s,
``BadRequest`` 400s with Effect-Schema wording, a 500 ``UnknownError`` for a body that is
not JSON, and the ``PermissionNotFoundError`` tag for an unknown permission request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from corral.sim.opencode.auth import BasicAuth
from corral.sim.opencode.bus import SSE_HEADERS, Bus
from corral.sim.opencode.config import SimConfig
from corral.sim.opencode.engine import Engine
from corral.sim.opencode.permissions import Permissions
from corral.sim.opencode.store import Json, NotFound, SessionRecord, Store
from corral.sim.opencode.validate import (
    MISSING,
    BadPayload,
    check_object,
    check_prompt,
    check_reply,
)

__all__ = ["SimState", "create_app"]


class SimState:
    """Everything one simulated instance holds; hung on ``app.state.sim`` for tests."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.bus = Bus()
        self.store = Store(config, self.bus)
        self.permissions = Permissions(config.permission, self.bus)
        self.engine = Engine(config, self.store, self.bus, self.permissions)


class _MalformedJSON(Exception):
    """The body is not JSON at all; the real server answers 500 ``UnknownError``."""


class _PermissionNotFound(Exception):
    def __init__(self, request_id: str) -> None:
        super().__init__(request_id)
        self.request_id = request_id


def _sim(request: Request) -> SimState:
    state: SimState = request.app.state.sim
    return state


async def _body(request: Request) -> Any:
    """The parsed JSON body, or ``MISSING`` for an empty one (``undefined`` in messages)."""
    raw = await request.body()
    if not raw.strip():
        return MISSING
    try:
        return json.loads(raw)
    except ValueError:
        raise _MalformedJSON from None


def _session(request: Request) -> SessionRecord:
    return _sim(request).store.get(request.path_params["session_id"])


# -- routes ------------------------------------------------------------------------------
async def health(request: Request) -> Response:
    return JSONResponse({"healthy": True, "version": _sim(request).config.version})


async def list_sessions(request: Request) -> Response:
    sessions = _sim(request).store.sessions.values()
    # Most recently updated first, as the real server lists them.
    ordered = sorted(sessions, key=lambda s: (-s.info["time"]["updated"], s.id))
    return JSONResponse([s.info for s in ordered])


async def create_session(request: Request) -> Response:
    body = await _body(request)
    body = {} if body is MISSING else check_object(body)
    return JSONResponse(_sim(request).store.create_session(body).info)


async def session_status(request: Request) -> Response:
    return JSONResponse(_sim(request).engine.status())


async def get_session(request: Request) -> Response:
    return JSONResponse(_session(request).info)


async def update_session(request: Request) -> Response:
    session = _session(request)
    body = check_object(await _body(request))
    if isinstance(body.get("title"), str):
        session.info["title"] = body["title"]
    _sim(request).store.touch(session)
    return JSONResponse(session.info)


async def delete_session(request: Request) -> Response:
    sim = _sim(request)
    session_id = request.path_params["session_id"]
    sim.store.get(session_id)
    sim.engine.abort(session_id)
    sim.store.delete(session_id)
    return JSONResponse(True)


async def prompt_async(request: Request) -> Response:
    session = _session(request)
    body = check_prompt(await _body(request))
    sim = _sim(request)
    engine = sim.engine

    async def start() -> None:
        # An async callable: Starlette would run a plain function in a worker thread,
        # away from the loop the turn must live on.
        engine.start(session, body)

    delay = sim.config.prompt_delay
    if delay > 0 and sim.config.prompt_accept == "before":
        engine.start(session, body)  # taken now; only the answer is late
        await asyncio.sleep(delay)
        return Response(status_code=204)
    if delay > 0 and await _hung_up_within(request, delay):
        return Response(status_code=204)  # nobody reads it: the prompt was never taken
    # Start the turn only after the 204 is on the wire: no event may beat the response.
    return Response(status_code=204, background=BackgroundTask(start))


async def _hung_up_within(request: Request, seconds: float) -> bool:
    """Wait ``seconds``; True as soon as the client disconnects during the wait."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        if await request.is_disconnected():
            return True
        await asyncio.sleep(min(0.02, left))
    return await request.is_disconnected()


async def prompt(request: Request) -> Response:
    session = _session(request)
    body = check_prompt(await _body(request))
    result = await _sim(request).engine.start(session, body)
    return JSONResponse(None if result is None else result.wire())


async def list_messages(request: Request) -> Response:
    records = _session(request).messages
    limit = request.query_params.get("limit")
    if limit and limit.isdigit():
        records = records[-int(limit) :]
    return JSONResponse([r.wire() for r in records])


async def get_message(request: Request) -> Response:
    session = _session(request)
    return JSONResponse(session.message(request.path_params["message_id"]).wire())


async def abort(request: Request) -> Response:
    # Always true, for idle and even unknown sessions, as observed.
    _sim(request).engine.abort(request.path_params["session_id"])
    return JSONResponse(True)


async def list_permissions(request: Request) -> Response:
    return JSONResponse(_sim(request).permissions.pending())


def _reply(request: Request, reply: str, message: str | None) -> Response:
    request_id = request.path_params["request_id"]
    try:
        _sim(request).permissions.reply(request_id, reply, message)
    except NotFound:
        raise _PermissionNotFound(request_id) from None
    return JSONResponse(True)


async def reply_permission(request: Request) -> Response:
    reply, message = check_reply(await _body(request), "reply")
    return _reply(request, reply, message)


async def reply_permission_legacy(request: Request) -> Response:
    # The session in the path is not checked: the request id alone identifies it.
    reply, message = check_reply(await _body(request), "response")
    return _reply(request, reply, message)


async def events(request: Request) -> Response:
    sim = _sim(request)
    return StreamingResponse(
        sim.bus.stream(sim.config.heartbeat_interval),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


async def global_events(request: Request) -> Response:
    """``/global/event``: the same bus, each event wrapped with its directory and project.

    (The real server also interleaves ``sync`` duplicates here; they are not simulated.)
    """
    sim = _sim(request)

    async def wrapped() -> AsyncIterator[bytes]:
        async for frame in sim.bus.stream(sim.config.heartbeat_interval):
            event = json.loads(frame[len(b"data: ") :])
            envelope = {
                "directory": sim.config.directory,
                "project": sim.store.project_id,
                "payload": event,
            }
            yield b"data: " + json.dumps(envelope, separators=(",", ":")).encode() + b"\n\n"

    return StreamingResponse(wrapped(), media_type="text/event-stream", headers=SSE_HEADERS)


# -- errors ------------------------------------------------------------------------------------
Handler = Callable[[Request], Awaitable[Response]]


def _guard(handler: Handler) -> Handler:
    """Render the simulator's errors in OpenCode's bodies, in one place."""

    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except NotFound as exc:
            body: Json = {"name": "NotFoundError", "data": {"message": str(exc)}}
            return JSONResponse(body, status_code=404)
        except BadPayload as exc:
            body = {"name": "BadRequest", "data": {"message": str(exc), "kind": "Payload"}}
            return JSONResponse(body, status_code=400)
        except _PermissionNotFound as exc:
            body = {
                "_tag": "PermissionNotFoundError",
                "requestID": exc.request_id,
                "message": f"Permission request not found: {exc.request_id}",
            }
            return JSONResponse(body, status_code=404)
        except _MalformedJSON:
            message = "Unexpected server error. Check server logs for details."
            body = {"name": "UnknownError", "data": {"message": message, "ref": _ref()}}
            return JSONResponse(body, status_code=500)

    return wrapper


def _ref() -> str:
    return "err_" + secrets.token_hex(4)


_ROUTES: list[tuple[str, Handler, list[str]]] = [
    ("/global/health", health, ["GET"]),
    ("/global/event", global_events, ["GET"]),
    ("/event", events, ["GET"]),
    ("/session", list_sessions, ["GET"]),
    ("/session", create_session, ["POST"]),
    ("/session/status", session_status, ["GET"]),
    ("/session/{session_id}", get_session, ["GET"]),
    ("/session/{session_id}", update_session, ["PATCH"]),
    ("/session/{session_id}", delete_session, ["DELETE"]),
    ("/session/{session_id}/prompt_async", prompt_async, ["POST"]),
    ("/session/{session_id}/message", prompt, ["POST"]),
    ("/session/{session_id}/message", list_messages, ["GET"]),
    ("/session/{session_id}/message/{message_id}", get_message, ["GET"]),
    ("/session/{session_id}/abort", abort, ["POST"]),
    ("/session/{session_id}/permissions/{request_id}", reply_permission_legacy, ["POST"]),
    ("/permission", list_permissions, ["GET"]),
    ("/permission/{request_id}/reply", reply_permission, ["POST"]),
]


def create_app(config: SimConfig | None = None) -> Starlette:
    """Build one simulated OpenCode instance (its own sessions, bus and permissions)."""
    sim = SimState(config or SimConfig())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await sim.engine.close()

    routes = [Route(path, _guard(handler), methods=methods) for path, handler, methods in _ROUTES]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sim = sim
    if sim.config.password:
        app.add_middleware(BasicAuth, username=sim.config.username, password=sim.config.password)
    return app
