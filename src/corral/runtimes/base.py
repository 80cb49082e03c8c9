"""The runtime adapter contract: one Protocol every runtime implements, plus optional abilities.

An adapter owns one runtime's wire protocol and its quirks, nothing else: no policy, no storage,
no HTTP routing. Its ``mapper()`` turns native events into normalized drafts and is pure.
Abilities only some runtimes have are narrower Protocols with ``TypeGuard`` helpers, so callers
ask ``supports_approvals(adapter)`` instead of catching ``NotImplementedError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TypeGuard, runtime_checkable

from corral.domain.events import ApprovalDecision, EventDraft


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a runtime can do; exposed to API callers so they can degrade clearly."""

    streaming: bool
    stream_resume: bool
    history: bool
    token_deltas: bool
    tool_events: bool
    approvals: bool
    client_tools: bool
    usage: bool
    cancel: bool

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RuntimeTarget:
    """Everything an adapter is built from: where the runtime is and how to log in to it."""

    runtime_id: str
    kind: str
    base_url: str
    config: dict[str, Any]
    credentials: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """The agent version a session runs, as the runtime needs it."""

    name: str
    model: str | None
    instructions: str | None
    tools: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Corral's agent id and version: the key under which an adapter provisions (and later finds
    #: again, after a restart) the runtime-side agent or environment for this exact version.
    agent_id: str = ""
    version: int = 0


@dataclass(frozen=True, slots=True)
class NativeSession:
    native_session_id: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NativeEvent:
    native_session_id: str
    type: str
    payload: dict[str, Any]


#: Synthetic event an adapter yields when its native stream was interrupted and re-established:
#: events may have been missed in between, so the consumer should reconcile from history.
STREAM_RESUMED = "corral.stream_resumed"


class EventSubscription(Protocol):
    """Native events of one session, in order, from the moment ``subscribe`` returned."""

    def __aiter__(self) -> AsyncIterator[NativeEvent]: ...

    async def aclose(self) -> None: ...


class EventMapper(Protocol):
    """Per-session, stateful, pure: native event in, normalized drafts out."""

    def begin_turn(self, turn_id: str) -> None: ...

    def map(self, event: NativeEvent) -> list[EventDraft]: ...

    def finish_turn(self) -> list[EventDraft]:
        """The open turn's end, when the runtime is known to be idle but said so while nobody
        listened (found by a status check during recovery); empty when no turn is open."""
        ...


@runtime_checkable
class RuntimeAdapter(Protocol):
    kind: str
    capabilities: Capabilities

    async def health(self) -> dict[str, Any]: ...

    async def create_session(self, spec: AgentSpec, *, title: str) -> NativeSession: ...

    async def subscribe(self, native_session_id: str) -> EventSubscription: ...

    async def send(self, native_session_id: str, text: str, spec: AgentSpec) -> None: ...

    async def history(self, native_session_id: str) -> list[NativeEvent]: ...

    async def status(self, native_session_id: str) -> str: ...

    async def cancel(self, native_session_id: str) -> None: ...

    def mapper(self) -> EventMapper: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class SupportsApprovals(Protocol):
    async def resolve_approval(
        self,
        native_session_id: str,
        native_approval_id: str,
        decision: ApprovalDecision,
        message: str | None,
    ) -> None: ...


def supports_approvals(adapter: RuntimeAdapter) -> TypeGuard[SupportsApprovals]:
    return adapter.capabilities.approvals and isinstance(adapter, SupportsApprovals)


@runtime_checkable
class SupportsDeliveryCheck(Protocol):
    """Can list the user inputs the runtime holds for a session, oldest first.

    After a crash between writing an input and hearing the runtime accept it, Corral compares
    this list with the inputs it knows were delivered to decide whether to send it again, so an
    accepted message is delivered exactly once.
    """

    async def user_inputs(self, native_session_id: str) -> list[str]: ...


def supports_delivery_check(adapter: RuntimeAdapter) -> TypeGuard[SupportsDeliveryCheck]:
    return isinstance(adapter, SupportsDeliveryCheck)


@dataclass(frozen=True, slots=True)
class ToolResult:
    call_id: str
    output: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class InputAnswer:
    """A caller's answer to an ``input.requested`` event: free text (a question, an A2A
    ``input-required`` task) or the results of client-side tools (Claude custom tools)."""

    text: str | None = None
    tool_results: tuple[ToolResult, ...] = ()


@runtime_checkable
class SupportsClientInput(Protocol):
    """Can resume a turn that waits for the caller (``input.requested`` with ``request_id``)."""

    async def answer_input(
        self, native_session_id: str, request_id: str, answer: InputAnswer
    ) -> None: ...


def supports_client_input(adapter: RuntimeAdapter) -> TypeGuard[SupportsClientInput]:
    return adapter.capabilities.client_tools and isinstance(adapter, SupportsClientInput)
