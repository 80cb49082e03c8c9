"""Writing call records off the response path: batched, durable, never dropped.

A finished call hands its record over (no I/O, no task). One writer commits whatever has queued
in one multi-row INSERT (group commit), so the cost per call falls as load rises. Calls made
with a session's key also become ``usage`` events on that session (``cost_source: gateway``),
which move the session's token and cost counters. If the database stalls, records queue in
memory; past ``max_queued`` new calls wait for room (backpressure) rather than losing records.
Shutdown drains the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from corral.audit import batches
from corral.audit.log import AuditLog
from corral.audit.record import AuditEntry, entry
from corral.domain.events import EventDraft, EventType
from corral.domain.gateway import CallRecord
from corral.domain.ids import new_id
from corral.store import gateway as repo
from corral.store.db import Database
from corral.telemetry.metrics import Metrics
from corral.telemetry.model_calls import call_span
from corral.telemetry.spans import SpanRecord

log = logging.getLogger(__name__)

#: Records a session's usage event: (session id, the event drafts).
SessionUsage = Callable[[str, list[EventDraft]], Awaitable[object]]
#: Takes finished spans to export over OTLP (never waits). The store needs no copy: a call's
#: span is built from its row when a trace is read (:mod:`corral.telemetry.model_calls`).
SpanSink = Callable[[list[SpanRecord]], None]

_BATCH = 1000
_CHILDREN_CACHED = 4096
_RETRY_SECONDS = 1.0


def usage_event(record: CallRecord) -> EventDraft:
    data = {
        "scope": "request", "cumulative": False, "model": record.model,
        "input_tokens": record.input_tokens + record.cache_read_tokens + record.cache_write_tokens,
        "output_tokens": record.output_tokens, "cache_read_tokens": record.cache_read_tokens,
        "cache_write_tokens": record.cache_write_tokens, "cost_micros": record.cost_micros,
        "cost_usd": record.cost_micros / 1_000_000, "cost_source": "gateway",
        "estimated": record.estimated, "call_id": record.id, "status": record.status,
    }  # fmt: skip
    return EventDraft(EventType.USAGE, data, f"gateway:{record.id}", "gateway.call")


def _seals(batch_id: str, batch: list[CallRecord]) -> list[AuditEntry]:
    """One ``model.calls`` record per org in the batch, sealing its call rows (a digest)."""
    by_org: dict[str, list[CallRecord]] = {}
    for record in batch:
        by_org.setdefault(record.org_id, []).append(record)
    seals = []
    for org_id, records in by_org.items():
        outcomes: dict[str, int] = {}
        for r in records:
            outcomes[str(r.outcome)] = outcomes.get(str(r.outcome), 0) + 1
        seals.append(entry(
            batches.ACTION, (batches.RESOURCE, batch_id), actor=None, org_id=org_id,
            details={"calls": len(records), "digest": batches.digest_of(records),
                     "outcomes": outcomes, "cost_micros": sum(r.cost_micros for r in records),
                     "first_call": min(r.id for r in records),
                     "last_call": max(r.id for r in records)},
        ))  # fmt: skip
    return seals


class CallRecorder:
    def __init__(
        self,
        db: Database,
        *,
        on_session_usage: SessionUsage | None = None,
        metrics: Metrics | None = None,
        spans: SpanSink | None = None,
        audit: AuditLog | None = None,
        max_queued: int = 10_000,
        linger: float = 0.05,
    ) -> None:
        self._db = db
        self._linger = linger
        self._spans = spans
        self._audit = audit
        self._metrics = metrics
        self._on_session_usage = on_session_usage
        self._max = max_queued
        self._queue: list[CallRecord] = []
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()
        self.written = 0
        self._children: dict[tuple[Any, ...], Any] = {}

    def add(self, record: CallRecord) -> None:
        self._queue.append(record)
        if len(self._queue) >= self._max:
            self._room.clear()
        self._wake.set()

    async def wait_for_room(self) -> None:
        """Where a new call waits while the queue is full (the database is behind)."""
        if not self._room.is_set():
            await self._room.wait()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="gateway-recorder")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            # Let records gather: one commit per linger under a trickle, not one per call.
            # Records that arrive during a commit wait for the next linger too: committing them
            # at once would, at low rates, turn into a commit every few calls.
            await asyncio.sleep(self._linger)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("writing gateway call records failed; retrying")
                self._wake.set()
                await asyncio.sleep(_RETRY_SECONDS)

    async def flush(self) -> None:
        """Commit everything queued when called (records stay queued until their write
        committed; those that arrive meanwhile are left for the next flush)."""
        async with self._flushing:
            await self._flush(len(self._queue))

    async def _flush(self, count: int) -> None:
        while count > 0 and self._queue:
            batch = self._queue[: min(_BATCH, count)]
            count -= len(batch)
            batch_id = new_id("batch")
            for record in batch:
                record.batch_id = batch_id
            async with self._db.write() as conn:
                await repo.insert_calls(conn, batch)
                if self._audit is not None:
                    await self._audit.append_many(conn, _seals(batch_id, batch))
            del self._queue[: len(batch)]
            self.written += len(batch)
            if len(self._queue) < self._max:
                self._room.set()
            self._observe(batch)
            self._trace(batch)
            await self._session_events(batch)

    def _trace(self, batch: list[CallRecord]) -> None:
        if self._spans is None:
            return
        self._spans([call_span(r, r.upstream_url) for r in batch])

    def _observe(self, batch: list[CallRecord]) -> None:
        """Gateway metrics, from the records (so the call itself never touches a histogram)."""
        metrics = self._metrics
        if metrics is None:
            return
        child = self._child
        for r in batch:
            labels = ("chat", "anthropic" if r.api.startswith("anthropic") else "openai", r.model)
            error = "" if r.outcome == "ok" else (r.code or str(r.outcome))
            child(metrics.gateway_duration, *labels, error).observe(r.latency_ms / 1000)
            if r.admission_ms is not None:
                child(metrics.gateway_overhead, *labels).observe(r.admission_ms / 1000)
            if r.ttft_ms is not None and r.stream:
                child(metrics.gateway_first_token, *labels).observe(r.ttft_ms / 1000)
            tokens_in = r.input_tokens + r.cache_read_tokens + r.cache_write_tokens
            if tokens_in:
                child(metrics.token_usage, *labels, "input").observe(tokens_in)
            if r.output_tokens:
                child(metrics.token_usage, *labels, "output").observe(r.output_tokens)

    def _child(self, family: Any, *labels: str) -> Any:
        """``family.labels(*labels)``, remembered: that lookup costs more than the observation."""
        key = (id(family), *labels)
        found = self._children.get(key)
        if found is None:
            if len(self._children) >= _CHILDREN_CACHED:
                self._children.clear()  # label sets beyond this are rare; start afresh
            found = self._children[key] = family.labels(*labels)
        return found

    async def _session_events(self, batch: list[CallRecord]) -> None:
        if self._on_session_usage is None:
            return
        by_session: dict[str, list[EventDraft]] = {}
        for record in batch:
            if record.session_id:
                by_session.setdefault(record.session_id, []).append(usage_event(record))
        for session_id, drafts in by_session.items():
            try:
                await self._on_session_usage(session_id, drafts)
            except Exception:
                # The call record is committed; only the session's copy of it is missing.
                log.exception("recording gateway usage on session %s failed", session_id)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()
