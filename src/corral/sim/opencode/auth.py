"""Optional HTTP Basic auth, as ``opencode serve`` does when a server password is set.

Every route is guarded, ``/global/health`` included. A failure is a bare 401 with an
empty body and ``WWW-Authenticate: Basic realm="Secure Area"`` (observed on 1.18.33).
"""

from __future__ import annotations

import base64
import binascii
import secrets

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["BasicAuth"]


class BasicAuth:
    """Pure ASGI middleware, so streaming responses (``/event``) pass through untouched."""

    def __init__(self, app: ASGIApp, username: str, password: str) -> None:
        self.app = app
        self._expected = f"{username}:{password}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"www-authenticate", b'Basic realm="Secure Area"'),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    def _allowed(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name != b"authorization":
                continue
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "basic":
                return False
            try:
                decoded = base64.b64decode(token.strip(), validate=True)
            except (binascii.Error, ValueError):
                return False
            return secrets.compare_digest(decoded, self._expected)
        return False
