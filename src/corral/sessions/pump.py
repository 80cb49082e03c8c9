"""Pumps: one task per live session moving native events into the event log.

A pump subscribes before the turn's input is delivered (so nothing is missed), maps each native
event with the adapter's pure mapper, records the drafts, and wakes stream readers. It lives while
a turn is open and for a short grace period after (runtimes keep emitting after "idle"), then
unsubscribes. When the native stream was interrupted, or the runtime has been silent too long,
it reconciles from the runtime's history and status instead of trusting the live stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from corral.domain.errors import CorralError
from corral.domain.events import Event, EventDraft, EventType
from corral.runtimes.base import (
    STREAM_RESUMED,
    EventMapper,
    EventSubscription,
    NativeEvent,
    RuntimeAdapter,
)
from corral.runtimes.subscription import NativeReader
from corral.sessions.hub import EventHub
from corral.sessions.writer import EventWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PumpTimings:
    grace: float = 3.0  # keep listening this long after a turn ends
    silence: float = 30.0  # with a turn open, check the runtime after this much quiet


#: Sees every batch a pump recorded (governance: answering prompts, guards, settlement).
Observer = Callable[["Pump", list[Event]], Awaitable[None]]


class Pump:
    def __init__(
        self,
        *,
        session_id: str,
        native_session_id: str,
        adapter: RuntimeAdapter,
        subscription: EventSubscription,
        writer: EventWriter,
        hub: EventHub,
        timings: PumpTimings,
        observers: tuple[Observer, ...] = (),
    ) -> None:
        self.session_id = session_id
        self._observers = observers
        self.native_session_id = native_session_id
        self.adapter = adapter
        self.mapper: EventMapper = adapter.mapper()
        self._subscription = subscription
        self._writer = writer
        self._hub = hub
        self._timings = timings
        self.turn_id: str | None = None
        self.last_turn_id: str | None = None
        self.delivered = False
        self.turn_lock = asyncio.Lock()  # one turn start at a time per session in this process
        self.task: asyncio.Task[None] | None = None

    def begin_turn(self, turn_id: str, *, delivered: bool = False) -> None:
        self.turn_id = turn_id
        self.delivered = delivered
        self.mapper.begin_turn(turn_id)

    def abandon_turn(self, turn_id: str) -> None:
        """The turn was never written (its transaction failed): stop claiming it as live."""
        if self.turn_id == turn_id:
            self.turn_id = None

    def mark_delivered(self) -> None:
        """The runtime acknowledged the open turn's input: its idle status now means "done"."""
        self.delivered = True

    async def record(self, drafts: list[EventDraft]) -> None:
        if not drafts:
            return
        # Runtimes keep reporting briefly after a turn ends (OpenCode sends the aborted
        # message's final text and usage after its idle): those belong to the last turn.
        turn_id = self.turn_id or self.last_turn_id
        stored = await self._writer.record(self.session_id, drafts, turn_id=turn_id)
        if any(e.type == EventType.TURN_COMPLETED for e in stored):
            self.last_turn_id, self.turn_id = self.turn_id, None
        if stored:
            self._hub.publish(self.session_id, stored)
            for observer in self._observers:
                await observer(self, stored)

    async def reconcile(self, *, complete_if_idle: bool = True) -> None:
        """Catch up from the runtime's own record; dedupe makes repeats harmless.

        With ``complete_if_idle``, an open turn the runtime reports idle is ended (its stop
        reason from what the history showed); skip that right after (re)delivering an input,
        when the runtime may not have turned busy yet.
        """
        drafts: list[EventDraft] = []
        for native in await self.adapter.history(self.native_session_id):
            drafts += self.mapper.map(native)
        if (
            complete_if_idle
            and self.turn_id is not None
            and self.delivered
            and await self.adapter.status(self.native_session_id) == "idle"
        ):
            drafts += self.mapper.finish_turn()
        await self.record(drafts)

    async def run(self, on_exit: object) -> None:
        reader = NativeReader(self._subscription)
        try:
            while True:
                waiting_on = self.turn_id
                timeout = self._timings.silence if waiting_on else self._timings.grace
                natives = await reader.read(timeout)
                if natives is None:
                    if self.turn_id is None:
                        # Leave the registry before any await, so a turn starting now gets a
                        # fresh pump instead of this one that is about to stop.
                        if callable(on_exit):
                            on_exit(self)
                        return
                    if self.turn_id == waiting_on:  # a whole silence with this turn open
                        await self._guarded(self.reconcile())
                    continue
                # Everything that arrived together is one write (in order), up to a resume
                # marker: what came before it is recorded, then the runtime's record is read.
                # A backlog after a stall is caught up in a few commits, not one per event.
                drafts: list[EventDraft] = []
                for native in natives:
                    if native.type == STREAM_RESUMED:
                        await self._guarded(self.record(drafts))
                        drafts = []
                        await self._guarded(self.reconcile())
                    else:
                        drafts += self._map(native)
                await self._guarded(self.record(drafts))
        finally:
            reader.close()
            with contextlib.suppress(Exception):
                await self._subscription.aclose()
            if callable(on_exit):
                on_exit(self)

    def _map(self, native: NativeEvent) -> list[EventDraft]:
        try:
            return self.mapper.map(native)
        except Exception:
            log.exception("session %s: failed to map a %s event", self.session_id, native.type)
            return []

    async def _guarded(self, work: object) -> None:
        try:
            await work  # type: ignore[misc]
        except CorralError as exc:
            log.warning("session %s: runtime check failed: %s", self.session_id, exc.detail)
        except Exception:
            log.exception("session %s: failed to record runtime events", self.session_id)


class PumpRegistry:
    """The pumps of this process, at most one per session."""

    def __init__(
        self, writer: EventWriter, hub: EventHub, timings: PumpTimings | None = None
    ) -> None:
        self._writer = writer
        self._hub = hub
        self._timings = timings or PumpTimings()
        self._pumps: dict[str, Pump] = {}
        #: Called in order with every batch any pump records (governance, telemetry).
        self.observers: list[Observer] = []

    def get(self, session_id: str) -> Pump | None:
        return self._pumps.get(session_id)

    def live_turns(self) -> dict[str, Pump]:
        """Turns this process is pumping right now (their leases are renewed)."""
        return {p.turn_id: p for p in self._pumps.values() if p.turn_id is not None}

    def drop(self, pump: Pump) -> None:
        """Stop a pump whose turn another instance now owns."""
        self._forget(pump)
        if pump.task is not None:
            pump.task.cancel()

    async def attach(
        self, session_id: str, native_session_id: str, adapter: RuntimeAdapter
    ) -> Pump:
        """Return the session's running pump, starting (and subscribing) one if needed."""
        pump = self._pumps.get(session_id)
        if pump is not None and pump.adapter is adapter:
            return pump
        if pump is not None:  # the runtime's adapter was rebuilt (new credentials or URL)
            self._forget(pump)
            if pump.task is not None:
                pump.task.cancel()
        subscription = await adapter.subscribe(native_session_id)
        pump = self._pumps.get(session_id)  # another caller may have won while we subscribed
        if pump is not None and pump.adapter is adapter:
            await subscription.aclose()
            return pump
        pump = Pump(
            session_id=session_id,
            native_session_id=native_session_id,
            adapter=adapter,
            subscription=subscription,
            writer=self._writer,
            hub=self._hub,
            timings=self._timings,
            observers=tuple(self.observers),
        )
        self._pumps[session_id] = pump
        pump.task = asyncio.create_task(pump.run(self._forget), name=f"pump-{session_id}")
        return pump

    def _forget(self, pump: Pump) -> None:
        if self._pumps.get(pump.session_id) is pump:
            del self._pumps[pump.session_id]

    async def aclose(self) -> None:
        pumps = list(self._pumps.values())
        for pump in pumps:
            if pump.task is not None:
                pump.task.cancel()
        for pump in pumps:
            if pump.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pump.task
