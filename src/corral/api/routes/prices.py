"""Model prices: Corral's shipped table, overridden or extended by the org's admins."""

from __future__ import annotations

from fastapi import APIRouter, Path, Response, status

from corral.api.deps import Caller, Svc
from corral.api.schemas.common import PageOut
from corral.api.schemas.governance import Price, PricePut

router = APIRouter(prefix="/v1/prices", tags=["prices"])

Model = Path(min_length=1, max_length=200, description="e.g. 'gpt-4o' or 'anthropic/claude-x'.")


@router.get("", response_model=PageOut[Price])
async def list_prices(who: Caller, svc: Svc) -> PageOut[Price]:
    """Every known price, by model name; the org's own (`source` 'org') replace shipped ones."""
    prices = await svc.prices.list_prices(who)
    return PageOut[Price](data=[Price.model_validate(p) for p in prices], next_cursor=None)


@router.put("/{model:path}", response_model=Price)
async def set_price(body: PricePut, who: Caller, svc: Svc, model: str = Model) -> Price:
    """Price a model for this org, in USD per million tokens (admins only)."""
    price = await svc.prices.set_price(
        who,
        model,
        input_usd_per_mtok=body.input_usd_per_mtok,
        output_usd_per_mtok=body.output_usd_per_mtok,
        cache_read_usd_per_mtok=body.cache_read_usd_per_mtok,
    )
    return Price.model_validate(price)


@router.delete("/{model:path}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_price(who: Caller, svc: Svc, model: str = Model) -> Response:
    """Remove the org's price of a model (the shipped one, if any, applies again)."""
    await svc.prices.delete_price(who, model)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
