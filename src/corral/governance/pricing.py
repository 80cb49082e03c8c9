"""Model prices that budgets count with: the shipped table, and an org's own prices over it.

Prices are micro-USD per million tokens inside, USD per million tokens at the API. Changing one
bumps the governance epoch, like every change that can alter a decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from corral.audit.log import AuditLog
from corral.audit.record import entry
from corral.domain.errors import InvalidRequest, NotFound
from corral.domain.money import usd_to_micros
from corral.domain.records import ModelPriceRow
from corral.governance.governor import Governor
from corral.governance.prices import SHIPPED_PRICES, ModelPrice
from corral.identity.authz import Action, Principal, authorize, authorize_org_scope
from corral.store import governance as repo
from corral.store.db import Database
from corral.store.types import utcnow


@dataclass(frozen=True, slots=True)
class PriceView:
    model: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    cache_read_usd_per_mtok: float | None
    source: str  # "shipped" or "org"


class PriceService:
    def __init__(self, db: Database, governor: Governor, audit: AuditLog) -> None:
        self._db = db
        self._governor = governor
        self._audit = audit

    async def list_prices(self, who: Principal) -> list[PriceView]:
        authorize(who, Action.BUDGETS_READ)
        async with self._db.read() as conn:
            rows = await repo.org_prices(conn, who.org_id)
        own = {r.model for r in rows}
        shipped = [p for p in SHIPPED_PRICES if p.model not in own]
        views = [_price_view(p, "shipped") for p in shipped]
        views += [
            _price_view(
                ModelPrice(
                    r.model,
                    r.input_micros,
                    r.output_micros,
                    r.cache_read_micros,
                    r.cache_write_micros,
                ),
                "org",
            )
            for r in rows
        ]
        return sorted(views, key=lambda v: v.model)

    async def set_price(
        self,
        who: Principal,
        model: str,
        *,
        input_usd_per_mtok: float,
        output_usd_per_mtok: float,
        cache_read_usd_per_mtok: float | None,
    ) -> PriceView:
        authorize_org_scope(who, Action.BUDGETS_WRITE)
        if min(input_usd_per_mtok, output_usd_per_mtok, cache_read_usd_per_mtok or 0) < 0:
            raise InvalidRequest("prices must be >= 0", code="invalid_price")
        read = None if cache_read_usd_per_mtok is None else usd_to_micros(cache_read_usd_per_mtok)
        row = ModelPriceRow(
            who.org_id, model, usd_to_micros(input_usd_per_mtok),
            usd_to_micros(output_usd_per_mtok), read, None, utcnow(),
        )  # fmt: skip
        async with self._db.write() as conn:
            await repo.put_price(conn, row)
            await repo.bump_epoch(conn)
            self._governor.invalidate()
            await self._audit.append(conn, entry(
                "price.set", ("model_price", model), actor=who, org_id=who.org_id,
                details={"input_micros": row.input_micros, "output_micros": row.output_micros,
                         "cache_read_micros": read},
            ))  # fmt: skip
        return _price_view(ModelPrice(model, row.input_micros, row.output_micros, read), "org")

    async def delete_price(self, who: Principal, model: str) -> None:
        authorize_org_scope(who, Action.BUDGETS_WRITE)
        async with self._db.write() as conn:
            if not await repo.delete_price(conn, who.org_id, model):
                raise NotFound(f"no price of this org for {model!r}")
            await repo.bump_epoch(conn)
            self._governor.invalidate()
            await self._audit.append(conn, entry(
                "price.delete", ("model_price", model), actor=who, org_id=who.org_id,
            ))  # fmt: skip


def _price_view(price: ModelPrice, source: str) -> PriceView:
    read = None if price.cache_read_micros is None else price.cache_read_micros / 1e6
    return PriceView(price.model, price.input_micros / 1e6, price.output_micros / 1e6, read, source)
