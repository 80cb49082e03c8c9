"""Telemetry for one Corral process: traces and metrics from what it records and decides.

Two hooks feed it, both synchronous and cheap: :meth:`Telemetry.on_events` sees every event
batch this process commits (the event hub's tap) and :meth:`Telemetry.on_decision` every
governance decision (the governor's listener). A background task closes ended turns (adding who
ran them, read once per session), stores and exports spans, and forgets turns no longer traced
here. ``/metrics`` and the session trace read back through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from opentelemetry.sdk.trace.export import SpanExporter

from corral.domain.events import Event, EventType
from corral.domain.governance import Decision, DecisionRequest
from corral.domain.records import Budget
from corral.store import gateway as gateway_repo
from corral.store import sessions as session_repo
from corral.store import spans as span_repo
from corral.store.db import Database
from corral.store.types import utcnow
from corral.telemetry import semconv as sc
from corral.telemetry.invocation import TurnInfo, provider_of, turn_span
from corral.telemetry.metrics import Metrics
from corral.telemetry.model_calls import call_span
from corral.telemetry.spans import SpanRecord, TurnTrace
from corral.telemetry.tracer import LiveTurn, TurnTracer
from corral.telemetry.tracing import SpanPipeline, record_of, resource_for
from corral.telemetry.tree import SpanNode, build_tree

log = logging.getLogger(__name__)

BudgetLevels = Callable[[], Awaitable[Iterable[tuple[Budget, int]]]]

#: Sessions whose agent and runtime are remembered (one small read per session otherwise).
INFO_CACHE = 1024
#: A session's trace in the API holds at most this many spans.
TRACE_LIMIT = 5000


class Telemetry:
    def __init__(
        self,
        db: Database,
        *,
        content: bool = False,
        grace: float = 3.0,
        instance: str = "corral",
        has_pump: Callable[[str], bool] = lambda _session_id: False,
        budget_levels: BudgetLevels | None = None,
        exporter: SpanExporter | None = None,
        flush_seconds: float = 0.5,
    ) -> None:
        self._db = db
        self._content = content
        self._budget_levels = budget_levels
        self._flush_seconds = flush_seconds
        self.metrics = Metrics()
        self.pipeline = SpanPipeline(
            db, self.metrics, exporter=exporter, resource=resource_for(instance)
        )
        self.tracer = TurnTracer(
            emit=self.pipeline.submit, has_pump=has_pump, grace=grace, content=content
        )
        self._infos: OrderedDict[str, TurnInfo | None] = OrderedDict()
        self._decision_series: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._task: asyncio.Task[None] | None = None

    # -- hooks: synchronous, cheap, never raise ---------------------------------------------------

    def on_events(self, session_id: str, events: list[Event]) -> None:
        if not events:
            return
        try:
            lag = (utcnow() - events[-1].ts).total_seconds()
            self.metrics.pump_lag.observe(max(lag, 0.0))
            self.tracer.observe(session_id, events)
        except Exception:
            log.exception("session %s: tracing events failed", session_id)

    def on_decision(self, request: DecisionRequest, decision: Decision, seconds: float) -> None:
        try:
            key = (request.act.value, decision.outcome.value, decision.code)
            counted = self._decision_series.get(key)
            if counted is None:  # few acts x codes: keep their series at hand (labels() locks)
                counted = self._decision_series[key] = (
                    self.metrics.decisions.labels(*key),
                    self.metrics.decision_duration.labels(key[0]),
                )
            counted[0].inc()
            counted[1].observe(seconds)
            self.tracer.on_decision(request, decision, seconds)
        except Exception:
            log.exception("tracing a %s decision failed", request.act.value)

    # -- the background work ----------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="telemetry")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.pipeline.ready.wait(), self._flush_seconds)
            self.pipeline.ready.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("telemetry flush failed; retrying")

    async def flush(self, *, everything: bool = False) -> None:
        """Close the turns that are due (``everything``: every ended one), store and export."""
        for live in self.tracer.due(everything=everything):
            try:
                await self._close(live)
            except Exception:
                log.exception("closing the trace of turn %s failed", live.trace.turn_id)
        abandoned = self.tracer.abandoned
        self.tracer.sweep()
        if self.tracer.abandoned > abandoned:
            self.metrics.spans_dropped.labels("turn_abandoned").inc(
                self.tracer.abandoned - abandoned
            )
        await self.pipeline.drain()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush(everything=True)
        await self.pipeline.aclose()

    async def _close(self, live: LiveTurn) -> None:
        turn = live.trace
        if turn.session_id is None:
            return
        info = await self._info(turn.session_id)
        if not live.recovered:
            spans = [turn_span(turn, info)]
        else:
            turn, spans = await self._rebuild(turn, info)
        self._turn_metrics(turn, info, spans[-1])
        self.pipeline.submit(spans)

    async def _rebuild(
        self, live: TurnTrace, info: TurnInfo | None
    ) -> tuple[TurnTrace, list[SpanRecord]]:
        """A turn this process took over: its whole trace from the store, minus what the
        replica that started it already stored."""
        assert live.session_id is not None
        async with self._db.read() as conn:
            events = await span_repo.turn_events(
                conn, live.session_id, live.turn_id, skip=[EventType.MESSAGE_DELTA.value]
            )
            stored = await span_repo.span_ids(conn, live.trace_id)
        turn = TurnTrace(live.turn_id, live.session_id, content=self._content)
        spans: list[SpanRecord] = []
        for event in events:
            spans += turn.apply(event)
        spans = [s for s in spans if s.span_id not in stored]
        return turn, [*spans, turn_span(turn, info)]

    async def _info(self, session_id: str) -> TurnInfo | None:
        if session_id in self._infos:
            self._infos.move_to_end(session_id)
            return self._infos[session_id]
        async with self._db.read() as conn:
            facts = await span_repo.turn_facts(conn, session_id)
        info = TurnInfo(**facts) if facts is not None else None
        self._infos[session_id] = info
        while len(self._infos) > INFO_CACHE:
            self._infos.popitem(last=False)
        return info

    def _turn_metrics(self, turn: TurnTrace, info: TurnInfo | None, span: SpanRecord) -> None:
        provider = provider_of(info.runtime_kind) if info else sc.ERROR_OTHER
        labels = (sc.INVOKE_AGENT, provider, (info.model if info else None) or "")
        error = str(span.attributes.get(sc.ERROR_TYPE, ""))
        seconds = (span.end - span.start).total_seconds()
        self.metrics.operation_duration.labels(*labels, error).observe(seconds)
        if turn.usage_seen:
            self.metrics.token_usage.labels(*labels, "input").observe(turn.input_tokens)
            self.metrics.token_usage.labels(*labels, "output").observe(turn.output_tokens)
        if turn.first_chunk is not None and turn.started is not None:
            ttfc = (turn.first_chunk - turn.started).total_seconds()
            self.metrics.time_to_first_chunk.labels(*labels).observe(max(ttfc, 0.0))

    # -- reading ----------------------------------------------------------------------------------

    async def session_trace(self, session_id: str) -> list[SpanNode]:
        """Every stored span of the session (all its turns), as trees."""
        async with self._db.read() as conn:
            rows = await span_repo.of_session(conn, session_id, TRACE_LIMIT)
            calls = await gateway_repo.calls_of_session(conn, session_id, TRACE_LIMIT)
        # A model call's span is not stored as a span: it is built from the call's row.
        spans = [record_of(r) for r in rows] + [call_span(c, c.upstream_url) for c in calls]
        return build_tree(spans)

    async def scrape(self) -> bytes:
        """The Prometheus exposition, with the fleet gauges read fresh."""
        async with self._db.read() as conn:
            self.metrics.set_sessions(await session_repo.count_by_state(conn))
        if self._budget_levels is not None:
            self.metrics.set_budgets(await self._budget_levels())
        return self.metrics.exposition()
