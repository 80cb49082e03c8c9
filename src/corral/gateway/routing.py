"""The route table: which upstreams serve a model name, in fallback order. Pure data.

Compiled from the stored upstreams and model routes (with the upstream keys already unsealed),
replaced whole when the configuration changes, and read without locks on every call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from corral.domain.gateway import ModelRoute, Upstream, UpstreamKind

#: Anthropic requires a version header; callers usually send theirs, which is passed along.
ANTHROPIC_VERSION = "2023-06-01"


@dataclass(frozen=True, slots=True)
class Hop:
    """One target of a route, ready to send to: the upstream, its URL for this API, the model."""

    upstream: Upstream
    url: str
    model: str
    #: Header pairs that authenticate to the upstream (and any it was configured with).
    headers: tuple[tuple[str, str], ...]


def _auth_headers(upstream: Upstream, api_key: str | None) -> tuple[tuple[str, str], ...]:
    pairs = [(k.lower(), v) for k, v in upstream.headers.items()]
    if api_key:
        if upstream.kind is UpstreamKind.ANTHROPIC:
            pairs.append(("x-api-key", api_key))
        else:
            pairs.append(("authorization", f"Bearer {api_key}"))
    return tuple(pairs)


class RouteTable:
    def __init__(
        self,
        upstreams: Iterable[tuple[Upstream, str | None]],
        routes: Iterable[ModelRoute],
        epoch: int = 0,
    ) -> None:
        self.epoch = epoch
        self._upstreams = {u.id: (u, _auth_headers(u, key)) for u, key in upstreams}
        self._routes: dict[tuple[str, str], ModelRoute] = {}
        self._by_org: dict[str, list[ModelRoute]] = {}
        for route in routes:
            self._by_org.setdefault(route.org_id, []).append(route)
            for name in (route.name, *route.aliases):
                self._routes.setdefault((route.org_id, name), route)
        self._hops: dict[tuple[str, str, str], tuple[Hop, ...]] = {}

    def lookup(self, org_id: str, model: str) -> ModelRoute | None:
        """The route a caller's model name (or one of its aliases) means in this org."""
        return self._routes.get((org_id, model))

    def models(self, org_id: str) -> list[ModelRoute]:
        return self._by_org.get(org_id, [])

    def hops(self, route: ModelRoute, family: str, path: str) -> tuple[Hop, ...]:
        """The route's targets that speak ``family``, in order, with full URLs for ``path``."""
        cache_key = (route.id, family, path)
        found = self._hops.get(cache_key)
        if found is not None:
            return found
        hops = []
        for target in route.targets:
            entry = self._upstreams.get(target.upstream_id)
            if entry is None or entry[0].kind.value != family:
                continue
            upstream, headers = entry
            hops.append(Hop(upstream, upstream.base_url.rstrip("/") + path, target.model, headers))
        found = self._hops[cache_key] = tuple(hops)
        return found
