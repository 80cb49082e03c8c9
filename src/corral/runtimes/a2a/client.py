"""HTTP transport for an A2A agent: the agent card, JSON-RPC calls and SSE streams, both protocol
versions, and error translation. Spoken by hand with httpx (no a2a-sdk at run time).

Protocol choice: 1.0 when the card lists a JSON-RPC interface with ``protocolVersion`` 1.x, else
0.3; ``RuntimeTarget.config["protocol"]`` overrides it. 1.0 calls carry ``A2A-Version: 1.0``
(a 1.0 server treats a call without it as 0.3). The JSON-RPC URL is the card's interface URL
re-rooted on the registered base URL (same path, Corral's scheme and host), because cards often
advertise an internal host, and a proxy Corral was pointed at must stay in the path;
``config["follow_card_url"] = true`` uses the card's URL as is, ``config["rpc_url"]`` sets it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from corral.domain.errors import RuntimeRejected, RuntimeUnreachable
from corral.runtimes.http import RUNTIME_LIMITS, runtime_event_hooks
from corral.runtimes.sse import iter_sse, json_object, malformed_frames

_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
_STREAM_TIMEOUT = httpx.Timeout(None, connect=5.0)
CARD_PATHS = ("/.well-known/agent-card.json", "/.well-known/agent.json")
V03, V10 = "0.3", "1.0"

#: Corral's operation -> (0.3 method, 1.0 method); None: the version has no such method.
METHODS: dict[str, tuple[str | None, str]] = {
    "send": ("message/send", "SendMessage"),
    "stream": ("message/stream", "SendStreamingMessage"),
    "get": ("tasks/get", "GetTask"),
    "cancel": ("tasks/cancel", "CancelTask"),
    "resubscribe": ("tasks/resubscribe", "SubscribeToTask"),
    "list": (None, "ListTasks"),
}
#: A2A error codes worth an HTTP-like status in Corral's errors.
_CODE_STATUS = {-32001: 404, -32002: 409, -32004: 501, -32601: 501, -32009: 400}


class A2AError(RuntimeRejected):
    """A JSON-RPC error from the agent; ``rpc_code`` is the A2A/JSON-RPC code (e.g. -32001)."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        code = error.get("code")
        self.rpc_code = code if isinstance(code, int) else 0
        message = str(error.get("message") or "error")[:300]
        super().__init__(
            f"A2A agent answered {method} with error {self.rpc_code}: {message}",
            http_status=_CODE_STATUS.get(self.rpc_code, 502),
            rpc_code=self.rpc_code,
        )


def pick_protocol(card: dict[str, Any], wanted: str | None) -> str:
    if wanted in (V03, V10):
        return wanted
    for interface in card.get("supportedInterfaces") or []:
        if not isinstance(interface, dict):
            continue
        binding = str(interface.get("protocolBinding") or "JSONRPC").upper()
        if binding == "JSONRPC" and str(interface.get("protocolVersion") or "").startswith("1."):
            return V10
    return V03


def card_rpc_url(card: dict[str, Any], protocol: str) -> str | None:
    """The JSON-RPC URL the card gives for ``protocol`` (1.0 interfaces, else 0.3 ``url``)."""
    candidates: list[str] = []
    for interface in card.get("supportedInterfaces") or card.get("additionalInterfaces") or []:
        if not isinstance(interface, dict) or not isinstance(interface.get("url"), str):
            continue
        binding = str(interface.get("protocolBinding") or interface.get("transport") or "")
        if binding.upper() != "JSONRPC":
            continue
        version = str(interface.get("protocolVersion") or "")
        if version.startswith(protocol.split(".")[0] + ".") or not version:
            return str(interface["url"])
        candidates.append(str(interface["url"]))
    url = card.get("url")
    return url if isinstance(url, str) else (candidates[0] if candidates else None)


def rebase(url: str, base_url: str) -> str:
    """``url``'s path (and query) on ``base_url``'s scheme and host."""
    target, base = urlsplit(url), urlsplit(base_url)
    return urlunsplit((base.scheme, base.netloc, target.path or "/", target.query, ""))


def auth_headers(card: dict[str, Any], credentials: dict[str, Any] | None) -> dict[str, str]:
    """Headers for ``{"bearer"}`` or ``{"api_key"}``; the API key goes where the card's
    apiKey scheme says (1.0 ``apiKeySecurityScheme`` or 0.3 ``type: apiKey``), else X-API-Key."""
    creds = credentials or {}
    if isinstance(creds.get("bearer"), str):
        return {"Authorization": f"Bearer {creds['bearer']}"}
    key = creds.get("api_key")
    if not isinstance(key, str):
        return {}
    header = "X-API-Key"
    for scheme in (card.get("securitySchemes") or {}).values():
        if not isinstance(scheme, dict):
            continue
        api = scheme.get("apiKeySecurityScheme")
        if not isinstance(api, dict) and scheme.get("type") == "apiKey":
            api = {"location": scheme.get("in"), "name": scheme.get("name")}
        if (
            isinstance(api, dict)
            and str(api.get("location")).lower() == "header"
            and api.get("name")
        ):
            header = str(api["name"])
            break
    return {header: key}


class A2AClient:
    def __init__(
        self, base_url: str, config: dict[str, Any], credentials: dict[str, Any] | None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._config = config
        self._credentials = credentials
        self._http = httpx.AsyncClient(
            timeout=_TIMEOUT, limits=RUNTIME_LIMITS, event_hooks=runtime_event_hooks()
        )
        self._ids = itertools.count(1)
        self.card: dict[str, Any] | None = None
        self.protocol = V03
        self.rpc_url = self.base_url
        self._headers: dict[str, str] = {}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get(self, url: str) -> httpx.Response:
        try:
            return await self._http.get(url, headers=self._headers)
        except httpx.TimeoutException as exc:
            raise RuntimeUnreachable("A2A agent timed out serving its agent card") from exc
        except httpx.TransportError as exc:
            raise RuntimeUnreachable(f"A2A agent is unreachable: {type(exc).__name__}") from exc

    async def resolve(self, *, refresh: bool = False) -> dict[str, Any]:
        """Read the agent card (both well-known paths) and settle protocol, URL and auth."""
        if self.card is not None and not refresh:
            return self.card
        self._headers = auth_headers({}, self._credentials)  # the card may need them too
        response = None
        for path in CARD_PATHS:
            response = await self._get(self.base_url + path)
            if response.status_code != 404:
                break
        assert response is not None
        if response.status_code >= 400:
            raise RuntimeRejected(
                f"A2A agent card answered {response.status_code}", http_status=response.status_code
            )
        try:
            card = response.json()
        except ValueError as exc:
            raise RuntimeRejected("A2A agent card is not JSON") from exc
        if not isinstance(card, dict):
            raise RuntimeRejected("A2A agent card is not an object")
        self.protocol = pick_protocol(card, self._config.get("protocol"))
        if isinstance(self._config.get("rpc_url"), str):
            self.rpc_url = self._config["rpc_url"]
        else:
            url = card_rpc_url(card, self.protocol) or self.base_url
            self.rpc_url = (
                url if self._config.get("follow_card_url") else rebase(url, self.base_url)
            )
        self._headers = auth_headers(card, self._credentials)
        self.card = card
        return card

    def method(self, operation: str) -> str:
        name = METHODS[operation][1 if self.protocol == V10 else 0]
        if name is None:
            raise A2AError(
                operation, {"code": -32601, "message": "not in protocol " + self.protocol}
            )
        return name

    def _request(
        self, operation: str, params: dict[str, Any]
    ) -> tuple[str, dict[str, Any], dict[str, str]]:
        method = self.method(operation)
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        headers = dict(self._headers)
        if self.protocol == V10:
            headers["A2A-Version"] = V10
        return method, body, headers

    def _check_http(self, method: str, response: httpx.Response) -> None:
        if response.status_code in (401, 403):
            raise RuntimeRejected(
                f"A2A agent refused Corral's credentials ({response.status_code})",
                http_status=response.status_code,
            )
        if response.status_code >= 400:
            raise RuntimeRejected(
                f"A2A agent answered {response.status_code} to {method}",
                http_status=response.status_code,
            )

    async def call(self, operation: str, params: dict[str, Any]) -> Any:
        """One JSON-RPC call; its ``result``, or :class:`A2AError`."""
        await self.resolve()
        method, body, headers = self._request(operation, params)
        try:
            response = await self._http.post(self.rpc_url, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise RuntimeUnreachable(f"A2A agent timed out on {method}") from exc
        except httpx.TransportError as exc:
            raise RuntimeUnreachable(f"A2A agent is unreachable: {type(exc).__name__}") from exc
        self._check_http(method, response)
        try:
            answer = response.json()
        except ValueError as exc:
            raise RuntimeRejected(f"A2A agent sent a non-JSON answer to {method}") from exc
        if not isinstance(answer, dict):
            raise RuntimeRejected(f"A2A agent sent a malformed answer to {method}")
        if isinstance(answer.get("error"), dict):
            raise A2AError(method, answer["error"])
        return answer.get("result")

    async def stream(self, operation: str, params: dict[str, Any]) -> AsyncIterator[Any]:
        """A streaming call's ``result`` objects in order. An error frame raises A2AError; a
        frame that is not a JSON-RPC response is skipped (logged and counted)."""
        await self.resolve()
        method, body, headers = self._request(operation, params)
        headers["Accept"] = "text/event-stream"
        try:
            async with self._http.stream(
                "POST", self.rpc_url, json=body, headers=headers, timeout=_STREAM_TIMEOUT
            ) as response:
                self._check_http(method, response)
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    # Errors before the stream starts come back as a plain JSON-RPC answer.
                    answer = json_of(await response.aread())
                    if isinstance(answer.get("error"), dict):
                        raise A2AError(method, answer["error"])
                    if "result" in answer:
                        yield answer["result"]
                    return
                async for frame in iter_sse(response):
                    item = json_object(frame, "a2a")
                    if item is None:
                        continue
                    if isinstance(item.get("error"), dict):
                        raise A2AError(method, item["error"])
                    if "result" not in item:
                        malformed_frames["a2a"] += 1
                        continue
                    yield item["result"]
        except httpx.TimeoutException as exc:
            raise RuntimeUnreachable(f"A2A agent timed out on {method}") from exc
        except httpx.TransportError as exc:
            raise RuntimeUnreachable(f"A2A stream broke: {type(exc).__name__}") from exc


def json_of(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def user_message(
    protocol: str, text: str, *, message_id: str, context_id: str, task_id: str | None = None
) -> dict[str, Any]:
    """A user text message in the version's own shape."""
    message: dict[str, Any] = {"messageId": message_id, "contextId": context_id}
    if protocol == V10:
        message.update(role="ROLE_USER", parts=[{"text": text}])
    else:
        message.update(kind="message", role="user", parts=[{"kind": "text", "text": text}])
    if task_id:
        message["taskId"] = task_id
    return message
