"""Send the model APIs (``/v1/chat/completions``, ``/v1/messages`` ...) straight to the gateway.

Outermost, ahead of the API's middleware and routing: a model call pays for none of it, and the
official SDKs, pointed at Corral's address, find the paths they expect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from corral.gateway.app import is_gateway_path


class GatewayPaths:
    def __init__(self, app: ASGIApp, gateway_of: Callable[[], Any]) -> None:
        self.app = app
        self._gateway_of = gateway_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_gateway_path(scope["path"]):
            await self._gateway_of()(scope, receive, send)
            return
        await self.app(scope, receive, send)
