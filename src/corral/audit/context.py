"""What the current request is, for the records it causes: request id, trace id, caller.

Set once per HTTP request (``api/request_context.py`` sets the request id, the authentication
dependency the caller; tracing sets the trace id with :func:`set_trace_id`) and read by the
audit log wherever a record is made, however deep in the call. Outside a request all are None.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Protocol


class Actor(Protocol):
    """Who acts: an authenticated key (``identity.authz.Principal`` is one)."""

    @property
    def key_id(self) -> str: ...

    @property
    def user_id(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def org_id(self) -> str: ...

    @property
    def team_id(self) -> str | None: ...


_request_id: ContextVar[str | None] = ContextVar("corral_request_id", default=None)
_trace_id: ContextVar[str | None] = ContextVar("corral_trace_id", default=None)
_actor: ContextVar[Actor | None] = ContextVar("corral_actor", default=None)


def begin_request(request_id: str | None) -> None:
    """A new request starts: its id, and no caller known yet (the trace id is tracing's)."""
    _request_id.set(request_id)
    _actor.set(None)
    _trace_id.set(None)  # a kept-alive connection serves many requests in one task


def set_request_id(request_id: str | None) -> Token[str | None]:
    return _request_id.set(request_id)


def set_trace_id(trace_id: str | None) -> Token[str | None]:
    """The current trace (32 hex characters, W3C trace-context), recorded with each entry."""
    return _trace_id.set(trace_id)


def set_actor(actor: Actor | None) -> None:
    _actor.set(actor)


def request_id() -> str | None:
    return _request_id.get()


def trace_id() -> str | None:
    return _trace_id.get()


def actor() -> Actor | None:
    return _actor.get()
