"""Observability: traces, metrics and logs (docs/observability.md).

Pure mapping: ``semconv`` names the attributes (OpenTelemetry GenAI conventions, plus
``corral.*``), ``spans`` folds a turn's stored events into spans, ``invocation`` closes a turn
with its ``invoke_agent`` span, ``decisions`` maps a governance decision, ``tree`` nests spans.
With state or I/O: ``tracer`` keeps this process's live turns, ``tracing`` stores and exports
finished spans, ``metrics`` holds the Prometheus instruments, ``service`` ties them together;
``propagation`` sends W3C trace context to runtimes, ``logs`` formats and redacts log lines.
"""
