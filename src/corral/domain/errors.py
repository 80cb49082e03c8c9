"""Every error Corral raises on purpose, in one tree.

Each class carries a stable ``code`` (clients branch on it) and an HTTP ``status``; the API layer
turns any :class:`CorralError` into RFC 9457 problem+json once, in ``api/errors.py``::

    CorralError
    ├── InvalidRequest            400/422 validation, invalid_cursor, payload_too_large ...
    ├── Unauthenticated           401
    ├── Forbidden                 403 (the caller may see the resource but not do this)
    ├── NotFound                  404 (also what a caller gets for another team's resource)
    ├── Conflict                  409
    │   ├── IdempotencyMismatch   409 same Idempotency-Key, different body
    │   ├── AgentPaused           409
    │   └── SessionBusy           409 a turn is already running
    ├── GovernanceDenied          403 a policy said no (tool_denied, key_revoked, ...)
    │   ├── BudgetExceeded        402 a budget has no room for the worst case (names the scope)
    │   └── LimitReached          429 rate_limited, limit_exceeded (concurrency, turns)
    ├── Draining                  503 this instance is shutting down; retry (another replica)
    └── RuntimeFailure            502
        ├── RuntimeUnreachable    502 connect/timeout
        └── RuntimeRejected       502 the runtime answered with an error or garbage
"""

from __future__ import annotations

from typing import Any, ClassVar


class CorralError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code  # type: ignore[misc]
        self.extra = extra


class InvalidRequest(CorralError):
    status = 422
    code = "validation"
    title = "Invalid request"


class CapabilityUnsupported(InvalidRequest):
    """The session's runtime cannot do what was asked (its capability flag is false)."""

    status = 400
    code = "capability_unsupported"
    title = "Capability unsupported"


class PayloadTooLarge(InvalidRequest):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class Unauthenticated(CorralError):
    status = 401
    code = "unauthenticated"
    title = "Unauthenticated"


class Forbidden(CorralError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(CorralError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(CorralError):
    status = 409
    code = "conflict"
    title = "Conflict"


class IdempotencyMismatch(Conflict):
    code = "idempotency_mismatch"
    title = "Idempotency-Key reused with a different request"


class AgentPaused(Conflict):
    code = "agent_paused"
    title = "Agent is paused"


class SessionBusy(Conflict):
    code = "session_busy"
    title = "Session is busy"


class GovernanceDenied(CorralError):
    """``decide()`` answered deny; ``extra`` names the scope and the policy (id, version)."""

    status = 403
    code = "policy_denied"
    title = "Denied by policy"


class BudgetExceeded(GovernanceDenied):
    status = 402
    code = "budget_exceeded"
    title = "Budget exceeded"


class LimitReached(GovernanceDenied):
    status = 429
    code = "limit_exceeded"
    title = "Limit reached"


class Draining(CorralError):
    status = 503
    code = "draining"
    title = "Shutting down"


class RuntimeFailure(CorralError):
    status = 502
    code = "runtime_error"
    title = "Runtime error"


class RuntimeUnreachable(RuntimeFailure):
    code = "runtime_unreachable"
    title = "Runtime unreachable"


class RuntimeRejected(RuntimeFailure):
    code = "runtime_error"
    title = "Runtime error"
