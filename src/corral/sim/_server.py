"""Run an ASGI app under uvicorn on a loopback port, without blocking the caller.

Simulators (the mock LLM, the simulated runtimes) are served this way in tests and in
the ``make run`` demo. Two shapes are offered:

* :class:`BackgroundServer` runs the app in a daemon thread with its own event loop, for
  synchronous code such as session-scoped pytest fixtures;
* :func:`serve_in_loop` runs the app as a task on the caller's running loop, so the demo
  can host the simulators next to Corral itself in one process.

Both bind the listening socket *before* uvicorn starts (port 0 lets the kernel choose a
free port), so the URL is known without racing another process for the port, and both
return only once uvicorn accepts connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Any

import uvicorn

__all__ = ["BackgroundServer", "bind_socket", "serve_in_loop"]

# Seconds uvicorn waits for open responses (e.g. a long SSE stream) before cancelling them.
_GRACEFUL_SHUTDOWN_S = 1.0


class _Server(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers alone.

    uvicorn takes over SIGINT/SIGTERM when it serves from the main thread; a simulator
    embedded in a bigger program must not steal them from its host.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """Bind (but do not yet listen on) a TCP socket; port 0 picks a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _make_server(app: Any, log_level: str) -> _Server:
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="auto",
        timeout_graceful_shutdown=int(_GRACEFUL_SHUTDOWN_S) or 1,
    )
    return _Server(config)


def _url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


class BackgroundServer:
    """Serve an ASGI app from a daemon thread; usable as a context manager.

    >>> with BackgroundServer(app) as url:  # doctest: +SKIP
    ...     httpx.get(url + "/v1/models")
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_level: str = "warning",
        startup_timeout: float = 10.0,
    ) -> None:
        self.app = app
        self._host = host
        self._port = port
        self._log_level = log_level
        self._startup_timeout = startup_timeout
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Base URL such as ``http://127.0.0.1:PORT``; only valid after :meth:`start`."""
        if self._url is None:
            raise RuntimeError("server not started")
        return self._url

    def start(self) -> str:
        """Start serving and return the base URL once connections are accepted."""
        if self._url is not None:
            return self._url
        sock = bind_socket(self._host, self._port)
        server = _make_server(self.app, self._log_level)
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"corral-sim-server-{sock.getsockname()[1]}",
            daemon=True,  # never keep a test run alive because a simulator is still up
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise RuntimeError("ASGI server failed to start (see uvicorn log)")
            time.sleep(0.01)
        self._url = _url_of(sock)
        return self._url

    def stop(self, timeout: float = 5.0) -> None:
        """Ask uvicorn to exit and wait for the thread; force-exit if it lingers."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        self._server = self._thread = None
        self._url = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def serve_in_loop(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log_level: str = "warning",
    startup_timeout: float = 10.0,
) -> tuple[str, Callable[[], Awaitable[None]]]:
    """Serve ``app`` as a task on the running loop.

    Returns ``(base_url, stop)``; ``await stop()`` shuts the server down and waits for it.
    """
    sock = bind_socket(host, port)
    server = _make_server(app, log_level)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"corral-sim-{_url_of(sock)}")
    deadline = asyncio.get_running_loop().time() + startup_timeout
    while not server.started:
        if task.done() or asyncio.get_running_loop().time() > deadline:
            server.should_exit = True
            sock.close()
            if task.done() and task.exception() is not None:
                raise RuntimeError("ASGI server failed to start") from task.exception()
            raise RuntimeError("ASGI server failed to start (see uvicorn log)")
        await asyncio.sleep(0.01)
    url = _url_of(sock)

    async def stop() -> None:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), _GRACEFUL_SHUTDOWN_S + 5.0)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return url, stop
