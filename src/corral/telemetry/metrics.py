"""Prometheus metrics: one registry per process (no module globals), scraped at ``/metrics``.

GenAI metric names follow the OpenTelemetry conventions as an OTel-to-Prometheus bridge renders
them (dots become underscores, a seconds unit becomes a ``_seconds`` suffix); the buckets are
the conventions' advice. Gauges that describe the whole fleet (sessions by state, budgets left)
are computed on scrape from the store, so every replica reports the same truth.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from corral.domain.records import Budget
from corral.domain.states import SessionState

#: How many budgets ``corral_budget_remaining_usd`` reports: those with the least room left.
MAX_BUDGET_SERIES = 100

TOKEN_BUCKETS = tuple(4.0**i for i in range(14))  # 1 .. 67,108,864
DURATION_BUCKETS = tuple(0.01 * 2**i for i in range(14))  # 0.01 .. 81.92 s
FAST_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
GENAI_LABELS = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # -- GenAI client side: Corral invoking agents on their runtimes -------------------------
        self.token_usage = Histogram(
            "gen_ai_client_token_usage", "Tokens used per operation (gen_ai.client.token.usage).",
            [*GENAI_LABELS, "gen_ai_token_type"], buckets=TOKEN_BUCKETS, registry=r,
        )  # fmt: skip
        self.operation_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Duration of an operation, e.g. an agent turn (gen_ai.client.operation.duration).",
            [*GENAI_LABELS, "error_type"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.time_to_first_chunk = Histogram(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "From a turn's start to its first streamed output "
            "(gen_ai.client.operation.time_to_first_chunk).",
            GENAI_LABELS, buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        # -- the LLM gateway (observed from its call records, off the response path) ------------
        self.gateway_duration = Histogram(
            "gen_ai_server_request_duration_seconds",
            "LLM gateway: a model request, receipt to last byte (gen_ai.server.request.duration).",
            [*GENAI_LABELS, "error_type"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.gateway_first_token = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "LLM gateway: receipt to first streamed token (gen_ai.server.time_to_first_token).",
            GENAI_LABELS, buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.gateway_overhead = Histogram(
            "corral_gateway_overhead_seconds",
            "LLM gateway: receipt to the request leaving for the upstream (authentication, "
            "governance, budget reservation, body preparation).",
            GENAI_LABELS, buckets=FAST_BUCKETS, registry=r,
        )  # fmt: skip
        # -- governance ----------------------------------------------------------------------------
        self.decisions = Counter(
            "corral_governance_decisions", "Governance decisions by act, outcome and code.",
            ["act", "outcome", "code"], registry=r,
        )  # fmt: skip
        self.decision_duration = Histogram(
            "corral_governance_decision_duration_seconds", "Time decide() took, by act.",
            ["act"], buckets=FAST_BUCKETS, registry=r,
        )  # fmt: skip
        self.budget_remaining = Gauge(
            "corral_budget_remaining_usd",
            f"Room left in a budget's current window (the {MAX_BUDGET_SERIES} lowest).",
            ["budget_id", "scope", "period"], registry=r,
        )  # fmt: skip
        # -- sessions and the event pipeline ------------------------------------------------------
        self.sessions = Gauge(
            "corral_sessions", "Sessions by state (all replicas).", ["state"], registry=r
        )
        self.pump_lag = Histogram(
            "corral_pump_lag_seconds",
            "From an event's timestamp (taken as its commit began) to its hand-off to readers.",
            buckets=FAST_BUCKETS, registry=r,
        )  # fmt: skip
        self.spans_dropped = Counter(
            "corral_telemetry_spans_dropped", "Spans not stored or exported, by reason.",
            ["reason"], registry=r,
        )  # fmt: skip

    def set_sessions(self, counts: dict[str, int]) -> None:
        for state in SessionState:
            self.sessions.labels(state.value).set(counts.get(state.value, 0))

    def set_budgets(self, levels: Iterable[tuple[Budget, int]]) -> None:
        """(budget, micro-dollars left) pairs; only the lowest ``MAX_BUDGET_SERIES`` are shown."""
        self.budget_remaining.clear()
        lowest = sorted(levels, key=lambda level: level[1])[:MAX_BUDGET_SERIES]
        for budget, left in lowest:
            scope = f"{budget.scope_kind}:{budget.scope_id}"
            self.budget_remaining.labels(budget.id, scope, budget.period).set(left / 1e6)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
