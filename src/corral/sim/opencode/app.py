"""HTTP routes of the simulated ``opencode serve``.

Routes only parse, delegate to the store/engine/permissions and render; the wire shapes of
errors (``NotFoundError``, ``BadRequest``, ``PermissionNotFoundError``) live here once.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from corral.sim.opencode.bus import SSE_HEADERS, Bus
from corral.sim.opencode.config import SimConfig
from corral.sim.opencode.engine import Engine
from corral.sim.opencode.permissions import REPLIES, Permissions
from corral.sim.opencode.store import Json, NotFound, SessionRecord, Store

__all__ = ["SimState", "create_app"]


class SimState:
    """Everything one simulated instance holds; hung on ``app.state.sim`` for tests."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.bus = Bus()
        self.store = Store(config, self.bus)
        self.permissions = Permissions(config.permission, self.bus)
        self.engine = Engine(config, self.store, self.bus, self.permissions)


class _BadRequest(Exception):
    pass


def _sim(request: Request) -> SimState:
    state: SimState = request.app.state.sim
    return state


def _not_found(message: str) -> JSONResponse:
    return JSONResponse({"name": "NotFoundError", "data": {"message": message}}, status_code=404)


def _bad_request(message: str) -> JSONResponse:
    body = {"name": "BadRequest", "data": {"message": message, "kind": "Payload"}}
    return JSONResponse(body, status_code=400)


async def _json_body(request: Request, *, required: bool = True) -> Json:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise _BadRequest("Expected an object, received undefined")
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise _BadRequest("Malformed JSON in request body") from None
    if not isinstance(body, dict):
        raise _BadRequest(f"Expected an object, received {type(body).__name__}")
    return body


def _session(request: Request) -> SessionRecord:
    return _sim(request).store.get(request.path_params["session_id"])


# -- routes ------------------------------------------------------------------------------
async def health(request: Request) -> Response:
    return JSONResponse({"healthy": True, "version": _sim(request).config.version})


async def list_sessions(request: Request) -> Response:
    sessions = _sim(request).store.sessions.values()
    # Session ids descend with time, so sorting by id lists the newest first.
    return JSONResponse([s.info for s in sorted(sessions, key=lambda s: s.id)])


async def create_session(request: Request) -> Response:
    body = await _json_body(request, required=False)
    return JSONResponse(_sim(request).store.create_session(body).info)


async def session_status(request: Request) -> Response:
    return JSONResponse(_sim(request).engine.status())


async def get_session(request: Request) -> Response:
    return JSONResponse(_session(request).info)


async def update_session(request: Request) -> Response:
    session = _session(request)
    body = await _json_body(request)
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


def _prompt_body(body: Json) -> Json:
    parts = body.get("parts")
    if not isinstance(parts, list):
        raise _BadRequest("Expected array, received " + ("undefined" if parts is None else "value"))
    for index, part in enumerate(parts):
        if not isinstance(part, dict) or part.get("type") not in ("text", "file", "agent"):
            raise _BadRequest(f"Invalid input at parts[{index}]")
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise _BadRequest(f"Expected string at parts[{index}].text")
    return body


async def prompt_async(request: Request) -> Response:
    session = _session(request)
    body = _prompt_body(await _json_body(request))
    engine = _sim(request).engine

    async def start() -> None:
        # An async callable: Starlette would run a plain function in a worker thread,
        # away from the loop the turn must live on.
        engine.start(session, body)

    # Start the turn only after the 204 is on the wire: no event may beat the response.
    return Response(status_code=204, background=BackgroundTask(start))


async def prompt(request: Request) -> Response:
    session = _session(request)
    body = _prompt_body(await _json_body(request))
    result = await _sim(request).engine.start(session, body)
    if result is None:
        return JSONResponse(None)
    return JSONResponse(result.wire())


async def list_messages(request: Request) -> Response:
    session = _session(request)
    records = session.messages
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


async def reply_permission(request: Request) -> Response:
    body = await _json_body(request)
    reply = body.get("reply")
    if reply not in REPLIES:
        raise _BadRequest("Invalid input at reply")
    message = body.get("message") if isinstance(body.get("message"), str) else None
    try:
        _sim(request).permissions.reply(request.path_params["request_id"], str(reply), message)
    except NotFound:
        return JSONResponse({"_tag": "PermissionNotFoundError"}, status_code=404)
    return JSONResponse(True)


async def reply_permission_legacy(request: Request) -> Response:
    _session(request)
    body = await _json_body(request)
    response = body.get("response")
    if response not in REPLIES:
        raise _BadRequest("Invalid input at response")
    try:
        _sim(request).permissions.reply(request.path_params["request_id"], str(response))
    except NotFound:
        return JSONResponse({"_tag": "PermissionNotFoundError"}, status_code=404)
    return JSONResponse(True)


async def events(request: Request) -> Response:
    sim = _sim(request)
    return StreamingResponse(
        sim.bus.stream(sim.config.heartbeat_interval),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


async def global_events(request: Request) -> Response:
    """``/global/event``: the same bus, each event wrapped with its directory."""
    sim = _sim(request)

    async def wrapped() -> AsyncIterator[bytes]:
        async for frame in sim.bus.stream(sim.config.heartbeat_interval):
            event = json.loads(frame[len(b"data: ") :])
            envelope = {"directory": sim.config.directory, "payload": event}
            yield b"data: " + json.dumps(envelope, separators=(",", ":")).encode() + b"\n\n"

    return StreamingResponse(wrapped(), media_type="text/event-stream", headers=SSE_HEADERS)


# -- errors and auth -------------------------------------------------------------------------
Handler = Callable[[Request], Awaitable[Response]]


def _guard(handler: Handler) -> Handler:
    """Render the simulator's domain errors in OpenCode's bodies."""

    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except NotFound as exc:
            return _not_found(str(exc))
        except _BadRequest as exc:
            return _bad_request(str(exc))

    return wrapper


class BasicAuth:
    """HTTP Basic auth on every route when a password is configured."""

    def __init__(self, app: ASGIApp, username: str, password: str) -> None:
        self.app = app
        expected = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._expected = expected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._allowed(scope):
            response = Response(
                "Unauthorized",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="Secure Area"'},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "basic":
                    return False
                with contextlib.suppress(binascii.Error, ValueError):
                    token = base64.b64encode(base64.b64decode(token, validate=True)).decode()
                return secrets.compare_digest(token, self._expected)
        return False


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
