"""One model call, start to finish: who, which route, ``decide()``, forward, meter, settle.

The order is the guarantee: nothing is sent upstream before the caller is authenticated, the
route is known, the call is allowed and its worst-case cost is reserved. The answer streams
through as it arrives; afterwards the real usage replaces the reservation (or, when the stream
was cut or the caller left, the estimate stands and the record says so), and the call's record
is queued for the batched writer. No database write sits between the upstream and the caller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import orjson

from corral.audit import context as audit_context
from corral.domain.errors import CorralError, Unauthenticated
from corral.domain.gateway import CallOutcome, CallRecord
from corral.domain.governance import Act, DecisionRequest, Outcome
from corral.domain.ids import new_id
from corral.gateway.auth import presented_key
from corral.gateway.engine import Gateway
from corral.gateway.routing import ANTHROPIC_VERSION, Hop
from corral.gateway.spans import new_span_id, new_trace_id, parse_traceparent, traceparent
from corral.gateway.wire import Wire, WireError
from corral.gateway.wire.base import Usage
from corral.governance.governor import raise_for
from corral.governance.prices import ModelPrice, cost_micros, worst_case_micros
from corral.store.types import utcnow

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

#: Caller headers passed on to the upstream (everything else is the gateway's business).
_PASSED = frozenset({b"anthropic-version", b"anthropic-beta", b"tracestate", b"openai-beta"})
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_JSON = (b"content-type", b"application/json")


class Refusal(Exception):
    """The call ends before reaching an upstream: status, stable code, message (and headers)."""

    def __init__(
        self, status: int, code: str, message: str, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or []


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refusal(413, "payload_too_large", f"request body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _upstream_headers(scope: Scope, family: str, parent: str | None) -> list[tuple[str, str]]:
    headers = [("content-type", "application/json"), ("accept-encoding", "identity")]
    if parent is not None:
        headers.append(("traceparent", parent))
    seen_version = False
    for name, value in scope["headers"]:
        if name in _PASSED:
            headers.append((name.decode(), value.decode("latin-1")))
            seen_version = seen_version or name == b"anthropic-version"
    if family == "anthropic" and not seen_version:
        headers.append(("anthropic-version", ANTHROPIC_VERSION))
    return headers


def _trace_of(scope: Scope) -> tuple[str, str | None]:
    """The caller's trace (and its span, our parent), or a new trace of our own."""
    for name, value in scope["headers"]:
        if name == b"traceparent":
            found = parse_traceparent(value.decode("latin-1"))
            if found is not None:
                return found
    return new_trace_id(), None


class ModelCall:
    """State of one call; ``run`` drives it and always leaves a record behind."""

    def __init__(self, gateway: Gateway, wire: Wire, scope: Scope) -> None:
        self.gw = gateway
        self.wire = wire
        self.scope = scope
        self.t0 = time.perf_counter()
        self.record = CallRecord(
            id=new_id("call"), org_id="", api=wire.name, model="", stream=False,
            started_at=utcnow(), outcome=CallOutcome.REFUSED,
        )  # fmt: skip
        if gateway.traced:
            trace_id, parent = _trace_of(scope)
            self.record.trace_id, self.record.parent_span_id = trace_id, parent
            self.record.span_id = new_span_id()
            audit_context.set_trace_id(trace_id)  # this call's task only: its audit record
        self.reservation: Any = None
        self.price: ModelPrice | None = None
        self.worst = 0
        self.response: aiohttp.ClientResponse | None = None
        self.sent_headers = False
        self.admitted = False
        #: Set just before the last byte goes out: a disconnect after it is not an abort.
        self.complete = False

    # -- before: everything that can refuse ----------------------------------------------------

    async def admit(self, raw: bytes) -> tuple[dict[str, Any], tuple[Hop, ...], bool, bool]:
        gw, wire, rec = self.gw, self.wire, self.record
        try:
            key, subject = await gw.keys.subject(presented_key(self.scope["headers"]))
        except Unauthenticated as exc:
            raise Refusal(401, exc.code, exc.detail) from None
        rec.org_id, rec.team_id, rec.user_id = subject.org_id, subject.team_id, subject.user_id
        rec.key_id, rec.agent_id, rec.session_id = key.id, subject.agent_id, subject.session_id
        if key.revoked_at is not None:
            gw.governor.invalidate()  # the next snapshot is read after the revocation: refused
        try:
            body = wire.parse(raw)
            model = body.get("model")
            if not isinstance(model, str) or not model:
                raise WireError("model_required", "'model' must be a non-empty string")
            rec.model = model
            table = await gw.routes()
            route = table.lookup(subject.org_id, model)
            if route is None:
                raise Refusal(404, "model_not_found", f"the model {model!r} is not served here")
            hops = table.hops(route, wire.family, wire.upstream_path)
            if not hops:
                raise Refusal(400, "model_not_served",
                              f"no upstream of {model!r} speaks the {wire.name} API")  # fmt: skip
            prepared = wire.prepare(body, route.max_output_tokens or gw.max_output_tokens, len(raw))
        except WireError as exc:
            raise Refusal(400, exc.code, exc.message) from None
        rec.model, rec.stream = route.name, prepared.stream
        rec.max_tokens = prepared.max_output_tokens
        snap = gw.governor.current
        if snap is not None:
            prices = snap.price_table(subject.org_id)
            self.price = prices.lookup(route.name) or prices.lookup(hops[0].model)
        if self.price is not None:
            self.worst = worst_case_micros(
                self.price, prepared.input_bound, prepared.max_output_tokens
            )
        decision = await gw.governor.decide(
            DecisionRequest(Act.MODEL_CALL, subject, model=route.name,
                            cost_micros=self.worst if self.price else None)
        )  # fmt: skip
        if decision.outcome is not Outcome.ALLOW:
            try:
                raise_for(decision)
            except CorralError as exc:
                retry = exc.extra.get("retry_after")
                extra = [(b"retry-after", str(retry).encode())] if retry else []
                raise Refusal(exc.status, exc.code, exc.detail, extra) from None
            raise Refusal(403, decision.code, decision.reason)
        self.reservation = decision.reservation
        self.admitted = True
        return body, hops, prepared.stream, prepared.injected_usage

    # -- the call --------------------------------------------------------------------------------

    async def forward(
        self, send: Send, body: dict[str, Any], hops: tuple[Hop, ...], stream: bool, injected: bool
    ) -> None:
        rec, wire = self.record, self.wire

        def body_for(hop: Hop) -> bytes:
            wire.set_model(body, hop.model)
            return orjson.dumps(body)

        parent = None
        if rec.trace_id is not None and rec.span_id is not None:
            parent = traceparent(rec.trace_id, rec.span_id)
        rec.admission_ms = (time.perf_counter() - self.t0) * 1000
        sent = await self.gw.upstreams.send(
            hops, body_for, _upstream_headers(self.scope, wire.family, parent)
        )
        rec.attempts = sent.attempts
        if sent.response is None or sent.hop is None:
            rec.outcome, rec.status, rec.code = CallOutcome.UNREACHABLE, 502, "upstream_unreachable"
            self.settle(None, estimate=False)
            await self.reply_error(send, 502, "upstream_unreachable",
                                   f"no upstream answered: {sent.error}")  # fmt: skip
            return
        self.response = response = sent.response
        rec.upstream_id, rec.upstream_model = sent.hop.upstream.id, sent.hop.model
        rec.upstream_url = sent.hop.url
        rec.status = response.status
        if response.status >= 400:
            data = await response.read()
            rec.outcome, rec.code = CallOutcome.UPSTREAM_ERROR, f"upstream_{response.status}"
            self.settle(None, estimate=False)
            if not wire.is_error_body(data):
                text = data[:500].decode("utf-8", "replace")
                data = wire.error_body(response.status, "upstream_error", text)
            await self._whole(send, response.status, data)
            return
        if not stream or not response.content_type.endswith("event-stream"):
            data = await response.read()
            self.ttft()
            usage = wire.usage_from_body(data)
            rec.outcome = CallOutcome.OK
            self.settle(usage, estimate=usage is None)
            await self._whole(send, response.status, data)
            return
        await self._stream(send, response, injected)

    async def _stream(self, send: Send, response: aiohttp.ClientResponse, injected: bool) -> None:
        rec, wire = self.record, self.wire
        meter = wire.meter(injected)
        await send({"type": "http.response.start", "status": response.status,
                    "headers": _SSE_HEADERS})  # fmt: skip
        self.sent_headers = True
        async for chunk in response.content.iter_any():
            out = meter.feed(chunk)
            if rec.ttft_ms is None and meter.saw_output:
                self.ttft()
            if out:
                await send({"type": "http.response.body", "body": out, "more_body": True})
        if meter.complete:
            rec.outcome = CallOutcome.OK if meter.error is None else CallOutcome.UPSTREAM_ERROR
            rec.code = meter.error
            tail = b""
        else:
            rec.outcome, rec.code = CallOutcome.TRUNCATED, "stream_truncated"
            tail = wire.sse_error(502, "stream_truncated", "the upstream cut the stream short")
        self.settle(meter.usage if meter.complete else None, estimate=not meter.complete)
        self.complete = True
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    # -- after -----------------------------------------------------------------------------------

    def ttft(self) -> None:
        self.record.ttft_ms = (time.perf_counter() - self.t0) * 1000

    def settle(self, usage: Usage | None, *, estimate: bool) -> None:
        """Replace the reservation by the cost: measured usage, else the estimate, else 0."""
        rec = self.record
        if usage is not None:
            rec.input_tokens, rec.output_tokens = usage.input_tokens, usage.output_tokens
            rec.cache_read_tokens, rec.cache_write_tokens = (
                usage.cache_read_tokens, usage.cache_write_tokens)  # fmt: skip
            if self.price is not None:
                rec.cost_micros = cost_micros(
                    self.price, usage.input_tokens, usage.output_tokens,
                    cache_read_tokens=usage.cache_read_tokens,
                    cache_write_tokens=usage.cache_write_tokens,
                )  # fmt: skip
        elif estimate:
            rec.cost_micros, rec.estimated = self.worst, True
        if self.reservation is not None:
            self.gw.governor.ledger.settle_nowait(self.reservation, rec.cost_micros)
            self.reservation = None

    def aborted(self) -> None:
        """The caller left: cancel upstream, and charge the estimate (it may have been spent)."""
        rec = self.record
        if self.response is not None:
            self.response.close()
        if not self.admitted:
            return  # refused (or still reading the request): nothing was sent
        rec.outcome, rec.code = CallOutcome.ABORTED, "client_disconnected"
        rec.status = rec.status or 499
        self.settle(None, estimate=True)

    def finish(self) -> CallRecord:
        rec = self.record
        rec.latency_ms = (time.perf_counter() - self.t0) * 1000
        if self.response is not None:
            self.response.release()
        return rec

    async def _whole(self, send: Send, status: int, data: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [_JSON, (b"content-length", str(len(data)).encode())]})  # fmt: skip
        self.sent_headers = self.complete = True
        await send({"type": "http.response.body", "body": data, "more_body": False})

    async def reply_error(
        self, send: Send, status: int, code: str, message: str,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:  # fmt: skip
        data = self.wire.error_body(status, code, message)
        await send({"type": "http.response.start", "status": status,
                    "headers": [_JSON, (b"content-length", str(len(data)).encode()),
                                *(headers or [])]})  # fmt: skip
        self.sent_headers = self.complete = True
        await send({"type": "http.response.body", "body": data, "more_body": False})
