"""The CLI's only way to Corral: its HTTP API, with the user's key.

Every failure (a problem+json answer, an unreachable server, a timeout) becomes a
:class:`CliError`, so commands never deal with httpx exceptions and the top level prints one
uniform ``error [code]: detail`` line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8700"

# The server sends a heartbeat comment every ~15 s by default; a silence several times longer
# than that means the connection is dead even if TCP has not noticed yet.
_STREAM_READ_TIMEOUT_S = 60.0
# How many consecutive failed reconnects (with no frame in between) before giving up.
_STREAM_MAX_RETRIES = 8
_STREAM_MAX_DELAY_S = 5.0
# Gateway errors on reconnect usually mean the server is restarting: worth another try.
_RETRYABLE_STATUS = frozenset({502, 503, 504})


class CliError(Exception):
    """A failure to report to the user: the problem's ``code``, ``detail`` and HTTP ``status``."""

    def __init__(
        self,
        code: str,
        detail: str,
        status: int | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status
        self.problem = problem or {"code": code, "detail": detail, "status": status}


@dataclass(frozen=True, slots=True)
class SseFrame:
    id: str | None = None
    event: str | None = None
    data: str | None = None
    retry_ms: int | None = None
    comment: str | None = None


def parse_sse(lines: Iterable[str]) -> Iterator[SseFrame]:
    """Split an event stream into frames; comments (heartbeats) come out as frames too.

    Yielding heartbeats lets the reader count them as signs of life when deciding whether a
    connection is still healthy.
    """
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in lines:
        if line.startswith(":"):
            yield SseFrame(comment=line[1:].strip())
            continue
        if line == "":
            if data or fields:
                retry = fields.get("retry", "")
                yield SseFrame(
                    id=fields.get("id"),
                    event=fields.get("event"),
                    data="\n".join(data) if data else None,
                    retry_ms=int(retry) if retry.isdigit() else None,
                )
            fields, data = {}, []
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        else:
            fields[name] = value


def _problem_error(response: httpx.Response) -> CliError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "code" in body:
        detail = str(body.get("detail") or body.get("title") or "request failed")
        return CliError(str(body["code"]), detail, response.status_code, body)
    text = response.text.strip()[:200] or response.reason_phrase
    return CliError(f"http_{response.status_code}", text, response.status_code)


class CorralClient:
    """A thin synchronous client; one per CLI invocation."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._has_key = bool(api_key)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        headers["User-Agent"] = "corral-cli"
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def _unreachable(self, exc: httpx.HTTPError) -> CliError:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            return CliError("timeout", f"Corral at {self.url} did not answer in time: {reason}")
        return CliError("connection_error", f"cannot reach Corral at {self.url}: {reason}")

    def _need_key(self) -> None:
        # Saying so locally beats a 401 whose hint talks about HTTP headers.
        if not self._has_key:
            raise CliError(
                "no_api_key", "no API key: set CORRAL_API_KEY or pass --api-key", status=None
            )

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        self._need_key()
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(
                method, path, params=clean, json=json_body, headers=headers
            )
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if response.status_code >= 400:
            raise _problem_error(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:  # e.g. CORRAL_URL points at some other web server
            raise CliError(
                "bad_response", f"{self.url} did not answer with JSON: is it a Corral server?"
            ) from None

    def text(self, path: str) -> tuple[str, dict[str, str]]:
        """An answer that is not JSON (e.g. a PEM file), with its headers."""
        self._need_key()
        try:
            response = self._http.get(path)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if response.status_code >= 400:
            raise _problem_error(response)
        return response.text, dict(response.headers)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.request("POST", path, json_body=body, headers=headers)

    def pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Each page of a paginated list, following ``next_cursor`` to the end."""
        query = dict(params or {})
        while True:
            page: dict[str, Any] = self.request("GET", path, params=query)
            yield page
            if not page.get("next_cursor"):
                return
            query["cursor"] = page["next_cursor"]

    def list_all(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return [item for page in self.pages(path, params) for item in page["data"]]

    # -- names to ids ---------------------------------------------------------------------

    def _by_name(self, kind: str, name: str, items: list[dict[str, Any]]) -> str:
        found = [item for item in items if item.get("name") == name]
        if not found:
            raise CliError("not_found", f"no {kind} named {name!r}", 404)
        if len(found) > 1:
            ids = ", ".join(str(item["id"]) for item in found)
            raise CliError(
                "ambiguous", f"{len(found)} {kind}s are named {name!r}: {ids}; use an id"
            )
        return str(found[0]["id"])

    def resolve_agent(self, ref: str) -> str:
        if ref.startswith("agt_"):
            return ref
        return self._by_name("agent", ref, self.list_all("/v1/agents", {"name": ref}))

    def resolve_runtime(self, ref: str) -> str:
        if ref.startswith("rt_"):
            return ref
        # The runtimes list has no name filter; an org has few runtimes, so list them all.
        return self._by_name("runtime", ref, self.list_all("/v1/runtimes"))

    def resolve_team(self, ref: str) -> str:
        if ref.startswith("team_"):
            return ref
        return self._by_name("team", ref, self.list_all("/v1/teams"))

    def resolve_scope(self, scope: str) -> str:
        """``org``, ``team:NAME`` and ``agent:NAME`` as the API's ``KIND:ID``; others as given."""
        kind, sep, ref = scope.partition(":")
        if scope == "org":
            return f"org:{self.get('/v1/me')['org_id']}"
        if sep and ref and kind == "team":
            return f"team:{self.resolve_team(ref)}"
        if sep and ref and kind == "agent":
            return f"agent:{self.resolve_agent(ref)}"
        return scope

    # -- the live event stream ----------------------------------------------------------

    def stream_events(
        self,
        session_id: str,
        after: int = 0,
        *,
        on_reconnect: Callable[[int, str], None] | None = None,
    ) -> Generator[dict[str, Any], None, None]:
        """Events of a session after seq ``after``, live, resuming with Last-Event-ID on drops.

        A first connection that fails is an error at once (wrong URL, wrong key); once the
        stream has worked, drops are retried with backoff, resuming exactly after the last
        event seen, so no event is lost or repeated.
        """
        self._need_key()
        last, failures, delay, connected = after, 0, 1.0, False
        path = f"/v1/sessions/{session_id}/stream"
        timeout = httpx.Timeout(30.0, read=_STREAM_READ_TIMEOUT_S)
        while True:
            reason = "the server closed the stream"
            try:
                headers = {"Last-Event-ID": str(last), "Accept": "text/event-stream"}
                with self._http.stream("GET", path, headers=headers, timeout=timeout) as response:
                    if response.status_code != 200:
                        response.read()
                        error = _problem_error(response)
                        if not connected or response.status_code not in _RETRYABLE_STATUS:
                            raise error
                        reason = error.detail
                    else:
                        connected = True
                        for frame in parse_sse(response.iter_lines()):
                            failures = 0
                            if frame.retry_ms is not None:
                                delay = frame.retry_ms / 1000
                            if frame.data is None:
                                continue
                            event: dict[str, Any] = json.loads(frame.data)
                            if frame.id is not None and frame.id.isdigit():
                                last = int(frame.id)
                            yield event
            except httpx.HTTPError as exc:
                if not connected:
                    raise self._unreachable(exc) from None
                reason = str(exc) or type(exc).__name__
            failures += 1
            if failures > _STREAM_MAX_RETRIES:
                raise CliError("stream_lost", f"lost the event stream of {session_id}: {reason}")
            if on_reconnect is not None:
                on_reconnect(last, reason)
            time.sleep(min(delay * failures, _STREAM_MAX_DELAY_S))
