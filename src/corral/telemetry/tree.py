"""Spans -> the tree a person reads: children under their parents, each level by start time."""

from __future__ import annotations

from dataclasses import dataclass, field

from corral.telemetry.spans import SpanRecord


@dataclass
class SpanNode:
    span: SpanRecord
    children: list[SpanNode] = field(default_factory=list)


def build_tree(spans: list[SpanRecord]) -> list[SpanNode]:
    """Roots (no parent, or a parent not among ``spans``) with their descendants."""
    nodes = {(s.trace_id, s.span_id): SpanNode(s) for s in spans}
    roots: list[SpanNode] = []
    for node in nodes.values():
        parent_id = node.span.parent_id
        parent = nodes.get((node.span.trace_id, parent_id)) if parent_id else None
        (parent.children if parent is not None else roots).append(node)

    def order(level: list[SpanNode]) -> None:
        level.sort(key=lambda n: (n.span.start, n.span.end, n.span.name))
        for n in level:
            order(n.children)

    order(roots)
    return roots
