"""Drive an OpenClaw gateway (simulated or real) through the adapter, like Corral's pump does.

Shared by the adapter tests (simulator) and the differential test (simulator vs real gateway):
``Turn.run`` subscribes, sends, maps every native event with a fresh mapper, reconciles from
``history()`` after a ``STREAM_RESUMED`` marker, dedupes by native id as the event store does,
and stops at ``turn.completed``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from corral.domain.events import EventDraft, EventType
from corral.runtimes.base import STREAM_RESUMED, AgentSpec, NativeEvent, RuntimeTarget
from corral.runtimes.openclaw.adapter import OpenClawAdapter

SPEC = AgentSpec(name="tester", model="mock/mock-model", instructions=None, tools=[])
TURN = "trn_drive"

Hook = Callable[["Turn", EventDraft], Awaitable[None]]


def adapter_for(url: str, token: str | None) -> OpenClawAdapter:
    creds = {"token": token} if token else None
    return OpenClawAdapter(RuntimeTarget("rt_test", "openclaw", url, {}, creds))


@dataclass
class Turn:
    adapter: OpenClawAdapter
    key: str = ""
    drafts: list[EventDraft] = field(default_factory=list)
    natives: list[NativeEvent] = field(default_factory=list)
    resumed: int = 0
    seen: set[str] = field(default_factory=set)

    @classmethod
    async def start(cls, adapter: OpenClawAdapter) -> Turn:
        session = await adapter.create_session(SPEC, title="drive")
        return cls(adapter, session.native_session_id)

    def _record(self, drafts: list[EventDraft]) -> list[EventDraft]:
        fresh = [d for d in drafts if d.native_id not in self.seen]
        self.seen.update(str(d.native_id) for d in fresh)
        self.drafts += fresh
        return fresh

    async def run(self, prompt: str, hook: Hook | None = None, timeout: float = 90.0) -> None:
        mapper = self.adapter.mapper()
        mapper.begin_turn(TURN)
        sub = await self.adapter.subscribe(self.key)
        try:
            await self.adapter.send(self.key, prompt, SPEC)
            async with asyncio.timeout(timeout):
                async for native in sub:
                    self.natives.append(native)
                    if native.type == STREAM_RESUMED:
                        self.resumed += 1
                        drafts: list[EventDraft] = []
                        for event in await self.adapter.history(self.key):
                            drafts += mapper.map(event)
                    else:
                        drafts = mapper.map(native)
                    for draft in self._record(drafts):
                        if hook is not None:
                            await hook(self, draft)
                        if draft.type is EventType.TURN_COMPLETED:
                            return
        finally:
            await sub.aclose()

    def of(self, kind: EventType) -> list[dict[str, Any]]:
        return [d.data for d in self.drafts if d.type is kind]

    def shape(self) -> list[str]:
        """The turn as a comparable outline: event types in order, repeats collapsed, deltas
        and usage left out (their count depends on timing), plus the stop reason."""
        out: list[str] = []
        for draft in self.drafts:
            if draft.type in (EventType.MESSAGE_DELTA, EventType.USAGE):
                continue
            label = draft.type.value
            if draft.type is EventType.TURN_COMPLETED:
                label += ":" + str(draft.data["stop_reason"])
            if draft.type is EventType.TOOL_RESULT:
                label += ":error" if draft.data["is_error"] else ":ok"
            if not out or out[-1] != label:
                out.append(label)
        return out
