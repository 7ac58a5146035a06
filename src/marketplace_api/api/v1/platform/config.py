from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from marketplace_api.config import ChargeType
from marketplace_api.deps import SettingsDep
from marketplace_api.money import SUPPORTED_CURRENCIES

router = APIRouter(tags=["platform"])


class CurrencyRead(BaseModel):
    code: str = Field(examples=["usd"])
    exponent: int = Field(
        description="Digits after the decimal point; amounts are in 10^-exponent."
    )
    minimum_charge_amount: int = Field(description="Stripe's minimum charge, in minor units.")
    maximum_charge_amount: int = Field(description="Stripe's maximum charge, in minor units.")

    model_config = ConfigDict(from_attributes=True)  # read from a `money.Currency`


class PlatformConfig(BaseModel):
    stripe_publishable_key: str | None = Field(
        description="Initialise Stripe.js with this key (null when payments are not configured)."
    )
    payments_enabled: bool
    default_charge_type: ChargeType
    platform_fee_bps: int = Field(description="Default platform fee in basis points (1/100 %).")
    currencies: list[CurrencyRead]


@router.get("/config", summary="Public configuration for the SPA")
async def get_config(settings: SettingsDep) -> PlatformConfig:
    return PlatformConfig(
        stripe_publishable_key=settings.stripe_publishable_key,
        payments_enabled=settings.stripe_enabled,
        default_charge_type=settings.default_charge_type,
        platform_fee_bps=settings.platform_fee_bps,
        currencies=[CurrencyRead.model_validate(c) for c in SUPPORTED_CURRENCIES.values()],
    )
