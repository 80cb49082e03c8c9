"""The live turns of this process: recorded events and decisions in, finished spans out.

Everything here is synchronous and in memory, called right after an event batch commits (the
event hub's tap) or a decision is made (the governor's listener), so it never blocks a pump:
finished spans go to ``emit`` (a bounded queue) and a turn that ended waits a short grace for
the usage runtimes report after "idle" before :meth:`TurnTracer.due` hands it over to be closed.

State is bounded: a turn leaves when it is closed, when another replica took its session over
(no pump here any more), when idle for too long, or, past ``max_turns``, oldest first.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from opentelemetry import trace

from corral.domain.events import Event, EventType
from corral.domain.governance import Decision, DecisionRequest, Outcome
from corral.store.types import utcnow
from corral.telemetry.decisions import attributes_of, decision_span, reserved_of
from corral.telemetry.spans import Attributes, SpanRecord, TurnTrace

Emit = Callable[[list[SpanRecord]], None]

#: A turn whose session has no pump here is given up after this long without events.
ORPHAN_SECONDS = 60.0


@dataclass
class LiveTurn:
    trace: TurnTrace
    touched: float
    #: First seen mid-way (taken over after a crash): rebuilt from the store when it ends.
    recovered: bool = False
    seen_events: bool = False
    due_at: float | None = None


@dataclass(frozen=True, slots=True)
class _Made:
    """One decision, about to become a span somewhere."""

    request: DecisionRequest
    decision: Decision
    decided: Attributes
    start: datetime
    end: datetime

    def span(self, parent: tuple[str, str] | None, turn_id: str | None) -> SpanRecord:
        # Random ids, as the OpenTelemetry SDK makes them: a decision happens once.
        fresh = (f"{random.getrandbits(128):032x}", None)
        trace_id, parent_id = parent if parent is not None else fresh
        return decision_span(
            self.request, self.decision, decided=self.decided, start=self.start, end=self.end,
            trace_id=trace_id, span_id=f"{random.getrandbits(64):016x}", parent_id=parent_id,
            turn_id=turn_id,
        )  # fmt: skip


class TurnTracer:
    def __init__(
        self,
        *,
        emit: Emit,
        has_pump: Callable[[str], bool],
        grace: float,
        content: bool = False,
        max_turns: int = 10_000,
        idle_limit: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._emit = emit
        self._has_pump = has_pump
        self._grace = grace
        self._content = content
        self._max_turns = max_turns
        self._idle_limit = idle_limit
        self._clock = clock
        self._turns: dict[str, LiveTurn] = {}  # turn id ->, oldest first
        self._open: dict[str, str] = {}  # session id -> its turn being traced here
        # Turns closed lately: what a runtime still reports about them is not a new trace.
        self._closed: OrderedDict[str, None] = OrderedDict()
        self.abandoned = 0

    def __len__(self) -> int:
        return len(self._turns)

    # -- events -----------------------------------------------------------------------------------

    def observe(self, session_id: str, events: list[Event]) -> None:
        now = self._clock()
        for event in events:
            if event.turn_id is None:
                continue
            live = self._live_for(session_id, event)
            if live is None:
                continue
            spans = live.trace.apply(event)
            live.touched = now
            if spans and not live.recovered:
                self._emit(spans)
            if event.type == EventType.TURN_COMPLETED and live.due_at is None:
                live.due_at = now + self._grace

    def _live_for(self, session_id: str, event: Event) -> LiveTurn | None:
        turn_id = event.turn_id
        assert turn_id is not None
        live = self._turns.get(turn_id)
        starting = event.type == EventType.TURN_STARTED
        if live is None and turn_id in self._closed:
            return None
        if live is None:
            # A turn this process did not start is traced only where its pump runs: an approval
            # answered through another replica must not open a second, partial trace there.
            if not starting and not self._has_pump(session_id):
                return None
            live = self._add(turn_id)
        if not live.seen_events:  # the session's newest turn here (decisions join it)
            live.seen_events = True
            live.recovered = not starting
            previous = self._open.get(session_id)
            if previous is not None and previous != turn_id and previous in self._turns:
                self._turns[previous].due_at = self._clock()  # its late usage window is over
            self._open[session_id] = turn_id
        return live

    def _add(self, turn_id: str) -> LiveTurn:
        live = LiveTurn(TurnTrace(turn_id, content=self._content), self._clock())
        self._turns[turn_id] = live
        while len(self._turns) > self._max_turns:
            self._forget(next(iter(self._turns)))
            self.abandoned += 1
        return live

    # -- decisions --------------------------------------------------------------------------------

    def on_decision(self, request: DecisionRequest, decision: Decision, seconds: float) -> None:
        end = utcnow()
        made = _Made(
            request, decision, attributes_of(decision), end - timedelta(seconds=seconds), end
        )
        current = trace.get_current_span().get_span_context()
        if current.is_valid:
            self._emit([made.span((f"{current.trace_id:032x}", f"{current.span_id:016x}"), None)])
            return
        admitted = request.hold_as or ""
        if admitted.startswith("turn:") and decision.outcome is Outcome.ALLOW:
            self._admitted(admitted.removeprefix("turn:"), made)
            return
        live = self._turns.get(self._open.get(request.subject.session_id or "", ""))
        if live is None or live.due_at is not None:
            self._emit([made.span(None, None)])
            return
        turn = live.trace
        parent = turn.span_id
        if request.tool is not None:
            parent = turn.note_tool_decision(request.tool.name, made.decided) or parent
        # Emitted even for a recovered turn: decisions are not events, no rebuild recreates them.
        self._emit([made.span((turn.trace_id, parent), turn.turn_id)])

    def _admitted(self, turn_id: str, made: _Made) -> None:
        """A turn's admission: the first span of its trace, though the turn does not exist yet."""
        live = self._turns.get(turn_id) or self._add(turn_id)
        turn = live.trace
        turn.admitted = made.start
        reserved = reserved_of(made.decision.reservation)
        if reserved is not None:
            turn.reserved_micros = reserved[0]
        span = made.span((turn.trace_id, turn.span_id), turn_id)
        if turn.started is None:
            turn.waiting.append(span)  # a first turn's session does not exist yet
        else:
            self._emit([span])

    # -- closing ----------------------------------------------------------------------------------

    def due(self, *, everything: bool = False) -> list[LiveTurn]:
        """Ended turns whose grace is over (``everything``: all ended turns, at shutdown)."""
        now = self._clock()
        ready = [
            live
            for live in self._turns.values()
            if live.due_at is not None and (everything or live.due_at <= now)
        ]
        for live in ready:
            self._forget(live.trace.turn_id)
            self._closed[live.trace.turn_id] = None
            if len(self._closed) > self._max_turns:
                self._closed.popitem(last=False)
        return ready

    def sweep(self) -> None:
        """Forget turns this process no longer traces (taken over elsewhere, or gone quiet)."""
        now = self._clock()
        for turn_id, live in list(self._turns.items()):
            if live.due_at is not None:
                continue
            idle = now - live.touched
            session_id = live.trace.session_id
            orphan = session_id is None or not self._has_pump(session_id)
            if idle > self._idle_limit or (orphan and idle > ORPHAN_SECONDS):
                self._forget(turn_id)
                self.abandoned += 1

    def _forget(self, turn_id: str) -> None:
        live = self._turns.pop(turn_id, None)
        session_id = live.trace.session_id if live is not None else None
        if session_id is not None and self._open.get(session_id) == turn_id:
            del self._open[session_id]
