"""Where finished spans go: Corral's own store always, and any OTLP collector when configured.

Spans are queued without blocking (a bounded queue: when full, new spans are dropped and
counted, never waited for), then written in batches, one transaction per batch (group commit),
and handed to the OpenTelemetry SDK's ``BatchSpanProcessor`` with the OTLP/HTTP protobuf
exporter, which sends from its own thread. The collector is configured the standard way:
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``), ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

from corral.store import spans as span_repo
from corral.store.db import Database
from corral.telemetry.metrics import Metrics
from corral.telemetry.spans import SpanKind, SpanRecord, SpanStatus

log = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000
BATCH = 100  # a SQLite write transaction holds the one write lock: keep it short

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KINDS = {
    SpanKind.INTERNAL: trace_api.SpanKind.INTERNAL,
    SpanKind.CLIENT: trace_api.SpanKind.CLIENT,
}
_STATUS = {
    SpanStatus.UNSET: StatusCode.UNSET,
    SpanStatus.OK: StatusCode.OK,
    SpanStatus.ERROR: StatusCode.ERROR,
}
try:
    VERSION = metadata.version("corral")
except metadata.PackageNotFoundError:  # running from a source tree
    VERSION = "0.0.0"
_SCOPE = InstrumentationScope("corral", VERSION)


def otlp_exporter_from_env() -> SpanExporter | None:
    """The OTLP/HTTP exporter, when a collector endpoint is set in the environment."""
    if not (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    ):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def resource_for(instance: str) -> Resource:
    attrs: dict[str, Any] = {"service.version": VERSION, "service.instance.id": instance}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attrs["service.name"] = "corral"
    return Resource.create(attrs)


def _ns(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1) * 1000


def _context(trace_id: str, span_id: str) -> SpanContext:
    return SpanContext(
        int(trace_id, 16), int(span_id, 16), is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )  # fmt: skip


def to_readable(record: SpanRecord, resource: Resource) -> ReadableSpan:
    """The SDK's span for exporters. Corral's spans are built from stored events after the
    fact (with ids derived from the turn), not timed live, so they are made directly."""
    parent = _context(record.trace_id, record.parent_id) if record.parent_id else None
    return ReadableSpan(
        record.name,
        context=_context(record.trace_id, record.span_id),
        parent=parent,
        resource=resource,
        attributes=record.attributes,
        kind=_KINDS[record.kind],
        status=Status(_STATUS[record.status]),
        start_time=_ns(record.start),
        end_time=_ns(record.end),
        instrumentation_scope=_SCOPE,
    )


def row_of(record: SpanRecord) -> dict[str, Any]:
    return {
        "trace_id": record.trace_id,
        "span_id": record.span_id,
        "parent_id": record.parent_id,
        "session_id": record.session_id,
        "turn_id": record.turn_id,
        "name": record.name[:300],
        "kind": record.kind.value,
        "started_at": record.start,
        "ended_at": record.end,
        "status": record.status.value,
        "attributes": record.attributes,
    }


def record_of(row: dict[str, Any]) -> SpanRecord:
    return SpanRecord(
        row["trace_id"], row["span_id"], row["parent_id"], row["name"], SpanKind(row["kind"]),
        row["started_at"], row["ended_at"], SpanStatus(row["status"]), dict(row["attributes"]),
        row["session_id"], row["turn_id"],
    )  # fmt: skip


class SpanPipeline:
    def __init__(
        self,
        db: Database,
        metrics: Metrics,
        *,
        exporter: SpanExporter | None,
        resource: Resource,
        limit: int = QUEUE_LIMIT,
    ) -> None:
        self._db = db
        self._metrics = metrics
        self._resource = resource
        self._processor = BatchSpanProcessor(exporter) if exporter is not None else None
        self._queue: deque[SpanRecord] = deque()
        self._limit = limit
        self.ready = asyncio.Event()  # a full batch is waiting

    def submit(self, spans: list[SpanRecord]) -> None:
        """Queue finished spans; never waits (spans beyond the queue's room are dropped)."""
        room = self._limit - len(self._queue)
        if room < len(spans):
            self._metrics.spans_dropped.labels("queue_full").inc(len(spans) - max(room, 0))
            spans = spans[: max(room, 0)]
        self._queue.extend(spans)
        if len(self._queue) >= BATCH:
            self.ready.set()

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def exports(self) -> bool:
        """Whether an OTLP collector is configured."""
        return self._processor is not None

    def export(self, spans: list[SpanRecord]) -> None:
        """Hand spans to the collector only: for spans whose data the store keeps elsewhere
        (a model call's row). Never waits: the SDK's processor drops what its queue cannot hold."""
        if self._processor is not None:
            for span in spans:
                self._processor.on_end(to_readable(span, self._resource))

    async def drain(self) -> None:
        """Store and export everything queued, one transaction per batch."""
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
            try:
                async with self._db.write() as conn:
                    await span_repo.insert_spans(conn, [row_of(s) for s in batch])
            except Exception:
                log.exception("storing %d spans failed; they are exported only", len(batch))
                self._metrics.spans_dropped.labels("store_failed").inc(len(batch))
            if self._processor is not None:
                for span in batch:
                    self._processor.on_end(to_readable(span, self._resource))

    async def aclose(self) -> None:
        await self.drain()
        if self._processor is not None:
            # Flushes what is still buffered for the collector (bounded by its export timeout).
            await asyncio.to_thread(self._processor.shutdown)
