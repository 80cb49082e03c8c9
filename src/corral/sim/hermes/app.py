"""HTTP surface of the simulated Hermes API server (profile: hermes-agent 0.19.0).

Routes, bodies and error envelopes follow the real server: ``/health``, ``/v1/capabilities``,
``/api/sessions`` (create, get, messages), ``/v1/runs`` (202 then a single-consumer event stream
that buffers from the start, ends with ``: stream closed`` and answers 404 afterwards), run
status, approval and stop. ``SimConfig.newer`` adds what later builds send (``request_id`` on
approvals, ``POST /v1/runs/{id}/steer``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from corral.sim.hermes.agent import AgentRun, Interrupted, UpstreamError

HERMES_VERSION = "0.19.0"
CHOICES = ["once", "session", "always", "deny"]
FEATURES = (
    "chat_completions", "run_submission", "run_status", "run_events_sse", "run_stop",
    "run_approval_response", "tool_progress_events", "approval_events", "session_resources",
)  # fmt: skip


@dataclass(frozen=True)
class SimConfig:
    llm_url: str
    api_key: str = "corral-hermes-sim-key-0000"
    keepalive: float = 30.0
    newer: bool = False  # later builds: request_id on approvals, /steer


def error(message: str, status: int, code: str | None = None) -> JSONResponse:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }
    return JSONResponse(body, status)


@dataclass
class Run:
    run_id: str
    session_id: str
    status: dict[str, Any]
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    subscribed: bool = False  # its one reader came: a second GET is a 404
    buffering: bool = True  # events are queued until the reader goes away
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    approvals: list[tuple[str, asyncio.Future[str]]] = field(default_factory=list)
    active: bool = True
    task: asyncio.Task[None] | None = None


class SimState:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.sessions: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.runs: dict[str, Run] = {}
        self._message_ids = 0

    def set_status(self, run: Run, status: str, **fields: Any) -> None:
        run.status.update(status=status, updated_at=time.time(), **fields)

    def push(self, run: Run, event: dict[str, Any] | None) -> None:
        if run.buffering:
            run.queue.put_nowait(None if event is None else {**event, "run_id": run.run_id})

    def store(self, session_id: str, message: dict[str, Any]) -> None:
        self._message_ids += 1
        row = {"id": self._message_ids, "session_id": session_id, "tool_call_id": None,
               "tool_calls": None, "timestamp": time.time(), **message}  # fmt: skip
        self.messages.setdefault(session_id, []).append(row)
        self.sessions.setdefault(session_id, _session_row(session_id, None))


def _session_row(session_id: str, title: str | None) -> dict[str, Any]:
    return {"id": session_id, "source": "api_server", "title": title, "started_at": time.time()}


def create_app(config: SimConfig) -> Starlette:
    state = SimState(config)

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.startswith("Bearer ") else ""
        return hmac.compare_digest(token.encode(), config.api_key.encode())

    def unauthorized() -> JSONResponse:
        body = {
            "error": {
                "message": "Invalid API key",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
        }
        return JSONResponse(body, 401)

    async def body_of(request: Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "platform": "hermes-agent", "version": HERMES_VERSION})

    async def capabilities(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        features = {name: True for name in FEATURES}
        if config.newer:
            features["run_steer"] = True
        return JSONResponse({"object": "hermes.api_server.capabilities", "platform": "hermes-agent",
                             "model": "hermes-agent", "auth": {"type": "bearer", "required": True},
                             "features": features})  # fmt: skip

    async def create_session(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        body = await body_of(request)
        if body is None:
            return error("Invalid JSON in request body", 400)
        session_id = str(body.get("id") or body.get("session_id") or f"api_{uuid.uuid4().hex[:8]}")
        title = body.get("title")
        if session_id in state.sessions:
            return error(f"Session already exists: {session_id}", 409, "session_exists")
        if title and any(s.get("title") == title for s in state.sessions.values()):
            return error(f"Title already in use by session {session_id}", 400, "invalid_title")
        state.sessions[session_id] = _session_row(session_id, title)
        return JSONResponse(
            {"object": "hermes.session", "session": state.sessions[session_id]}, 201
        )

    async def session_messages(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        session_id = request.path_params["session_id"]
        if session_id not in state.sessions:
            return error(f"Session not found: {session_id}", 404, "session_not_found")
        data = state.messages.get(session_id, [])
        return JSONResponse({"object": "list", "session_id": session_id, "data": data})

    async def start_run(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        body = await body_of(request)
        if body is None:
            return error("Invalid JSON", 400)
        text = body.get("input")
        if not text or not isinstance(text, str):
            return error("Missing 'input' field", 400)
        run_id = f"run_{uuid.uuid4().hex}"
        session_id = str(body.get("session_id") or run_id)
        now = time.time()
        status = {
            "object": "hermes.run",
            "run_id": run_id,
            "status": "queued",
            "created_at": now,
            "updated_at": now,
            "session_id": session_id,
            "model": body.get("model", "hermes-agent"),
        }
        run = state.runs[run_id] = Run(run_id, session_id, status)
        history = [
            {"role": str(m["role"]), "content": str(m["content"])}
            for m in body.get("conversation_history") or []
            if isinstance(m, dict) and "role" in m and "content" in m
        ]
        run.task = asyncio.create_task(
            _execute(state, run, history, text, body.get("instructions"))
        )
        return JSONResponse({"run_id": run_id, "status": "started"}, 202)

    async def get_run(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        run = state.runs.get(request.path_params["run_id"])
        if run is None:
            return error(f"Run not found: {request.path_params['run_id']}", 404, "run_not_found")
        return JSONResponse(run.status)

    async def run_events(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        run_id = request.path_params["run_id"]
        run = state.runs.get(run_id)
        if run is None or run.subscribed:
            return error(f"Run not found: {run_id}", 404, "run_not_found")
        run.subscribed = True
        return StreamingResponse(_frames(run, config.keepalive), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})  # fmt: skip

    async def approve(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        run_id = request.path_params["run_id"]
        run = state.runs.get(run_id)
        if run is None:
            return error(f"Run not found: {run_id}", 404, "run_not_found")
        body = await body_of(request) or {}
        raw = str(body.get("choice", "")).strip().lower()
        choice = {"approve": "once", "approved": "once", "allow": "once"}.get(raw, raw)
        if choice not in CHOICES:
            message = "Invalid approval choice; expected one of: once, session, always, deny"
            return error(message, 400, "invalid_approval_choice")
        if not run.active:
            return error(
                f"Run has no active approval session: {run_id}", 409, "approval_not_active"
            )
        pending = [(rid, f) for rid, f in run.approvals if not f.done()]
        wanted = body.get("request_id") if config.newer else None
        if wanted:
            pending = [(rid, f) for rid, f in pending if rid == wanted]
        if not pending:
            return error(f"Run has no pending approval: {run_id}", 409, "approval_not_pending")
        request_id, future = pending[0]
        future.set_result(choice)
        state.set_status(run, "running", last_event="approval.responded")
        event: dict[str, Any] = {
            "event": "approval.responded",
            "timestamp": time.time(),
            "choice": choice,
            "resolved": 1,
        }
        answer: dict[str, Any] = {
            "object": "hermes.run.approval_response",
            "run_id": run_id,
            "choice": choice,
            "resolved": 1,
        }
        if config.newer:
            event["request_id"] = answer["request_id"] = request_id
        state.push(run, event)
        return JSONResponse(answer)

    async def stop(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        run_id = request.path_params["run_id"]
        run = state.runs.get(run_id)
        if run is None or not run.active:
            return error(f"Run not found: {run_id}", 404, "run_not_found")
        state.set_status(run, "stopping", last_event="run.stopping")
        run.stopping.set()
        return JSONResponse({"run_id": run_id, "status": "stopping"})

    async def steer(request: Request) -> Response:
        run = state.runs.get(request.path_params["run_id"])
        if not authorized(request):
            return unauthorized()
        if run is None or not run.active:
            return error("Run is not accepting steer input", 409, "run_not_accepting_steer")
        state.push(run, {"event": "run.steered", "timestamp": time.time(), "accepted": True})
        return JSONResponse({"object": "hermes.run.steer", "run_id": run.run_id, "accepted": True})

    routes = [
        Route("/health", health),
        Route("/v1/health", health),
        Route("/v1/capabilities", capabilities),
        Route("/api/sessions", create_session, methods=["POST"]),
        Route("/api/sessions/{session_id}/messages", session_messages),
        Route("/v1/runs", start_run, methods=["POST"]),
        Route("/v1/runs/{run_id}", get_run),
        Route("/v1/runs/{run_id}/events", run_events),
        Route("/v1/runs/{run_id}/approval", approve, methods=["POST"]),
        Route("/v1/runs/{run_id}/stop", stop, methods=["POST"]),
    ]
    if config.newer:
        routes.append(Route("/v1/runs/{run_id}/steer", steer, methods=["POST"]))
    app = Starlette(routes=routes)
    app.state.sim = state
    return app


async def _frames(run: Run, keepalive: float) -> AsyncIterator[bytes]:
    try:
        while True:
            try:
                event = await asyncio.wait_for(run.queue.get(), keepalive)
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            if event is None:
                yield b": stream closed\n\n"
                return
            yield f"data: {json.dumps(event)}\n\n".encode()
    finally:
        # As on the real server, a reader that goes away takes the buffer with it: the rest
        # of the run is only visible through its status.
        run.buffering = False


async def _execute(
    state: SimState, run: Run, history: list[dict[str, Any]], text: str, instructions: Any
) -> None:
    messages: list[dict[str, Any]] = []
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    messages += [*history, {"role": "user", "content": text}]
    state.store(run.session_id, {"role": "user", "content": text})
    stored = len(messages)

    async def ask(request: dict[str, Any]) -> str:
        request_id = uuid.uuid4().hex[:12]
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        run.approvals.append((request_id, future))
        key = request["pattern_key"]
        event = {"command": request["command"], "pattern_key": key, "pattern_keys": [key],
                 "description": key, "allow_permanent": True, "event": "approval.request",
                 "timestamp": time.time(), "choices": CHOICES}  # fmt: skip
        if state.config.newer:
            event["request_id"] = request_id
        state.set_status(run, "waiting_for_approval", last_event="approval.request")
        state.push(run, event)
        stopped: asyncio.Future[Any] = asyncio.ensure_future(run.stopping.wait())
        await asyncio.wait([future, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        return future.result() if future.done() else "deny"

    agent = AgentRun(
        state.config.llm_url, messages, lambda e: state.push(run, e), ask, run.stopping
    )
    state.set_status(run, "running")
    try:
        output = await agent.run()
    except Interrupted:
        state.set_status(run, "cancelled", last_event="run.cancelled")
        state.push(run, {"event": "run.cancelled", "timestamp": time.time()})
    except UpstreamError as exc:
        state.set_status(run, "failed", error=str(exc), last_event="run.failed")
        state.push(run, {"event": "run.failed", "timestamp": time.time(), "error": str(exc)})
    else:
        usage = agent.usage.as_dict()
        state.set_status(run, "completed", output=output, usage=usage, last_event="run.completed")
        state.push(
            run,
            {"event": "run.completed", "timestamp": time.time(), "output": output, "usage": usage},
        )
    finally:
        for message in messages[stored:]:
            state.store(run.session_id, message)
        run.active = False
        state.push(run, None)
