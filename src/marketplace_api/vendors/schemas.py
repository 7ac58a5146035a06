from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from marketplace_api.config import ChargeType
from marketplace_api.inputs import CountryCode, Text
from marketplace_api.vendors.models import VendorStatus

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class VendorProfileUpdate(BaseModel):
    """`PUT /v1/vendor/profile`: creates the profile the first time, replaces it afterwards."""

    display_name: Text = Field(min_length=1, max_length=120, examples=["Acme Ceramics"])
    description: Text | None = Field(default=None, max_length=2000)
    country: CountryCode = Field(
        description="ISO 3166-1 alpha-2 country of the business (the Stripe account's country; "
        "fixed once the Stripe account exists).",
    )
    default_currency: str = Field(
        pattern=r"^[A-Za-z]{3}$", description="Lower-case ISO 4217.", examples=["usd"]
    )

    @field_validator("display_name")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value

    @field_validator("default_currency")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class VendorPublic(BaseModel):
    """A vendor as the storefront shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    display_name: str
    description: str | None
    country: str
    default_currency: str


# The public view and the profile's state. No docstring: it would become the schema's
# description in the published OpenAPI document.
class VendorProfileRead(VendorPublic):
    status: VendorStatus
    stripe_account_id: str | None
    can_accept_payments: bool
    created_at: datetime
    updated_at: datetime


class PaymentsSetupRead(BaseModel):
    stripe_account_id: str = Field(examples=["acct_1QaBcD2eZvKYlo2C"])
    onboarding_url: str = Field(
        description="Single-use Stripe-hosted onboarding URL. Redirect the vendor now; do not "
        "store it (it expires within minutes)."
    )
    expires_at: datetime
    status: VendorStatus


class OnboardingLinkRead(BaseModel):
    onboarding_url: str
    expires_at: datetime


class DashboardLinkRead(BaseModel):
    url: str = Field(description="Single-use Express dashboard login URL.")


class RequirementsRead(BaseModel):
    currently_due: list[str]
    past_due: list[str]
    disabled_reason: str | None


class PaymentsConfigRead(BaseModel):
    stripe_account_id: str | None
    status: VendorStatus
    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool
    capabilities: dict[str, str] = Field(examples=[{"card_payments": "active"}])
    requirements: RequirementsRead
    needs_onboarding: bool = Field(
        description="True while Stripe still needs information from the vendor: send them to "
        "`POST /v1/vendor/payments/onboarding-link`."
    )
    can_accept_payments: bool
    suspended: bool
    platform_fee_bps: int = Field(description="The fee the platform takes, in basis points.")
    charge_type: ChargeType
    payout_schedule: dict[str, Any] | None
    synced_at: datetime | None = Field(description="Time of the Stripe state shown.")


class BalanceAmount(BaseModel):
    amount: int = Field(description="Minor units.")
    currency: str


class BalanceRead(BaseModel):
    available: list[BalanceAmount]
    pending: list[BalanceAmount]


class PayoutScheduleUpdate(BaseModel):
    """Validated here before Stripe is called. Anchors only with their interval."""

    interval: Literal["daily", "weekly", "monthly", "manual"]
    delay_days: Annotated[int, Field(ge=1, le=31)] | Literal["minimum"] | None = Field(
        default=None,
        description="Days funds are held before payout (1-31), or `minimum` for the lowest the "
        "account's country allows. Values below the country minimum are refused by Stripe "
        "(422 `payout_schedule_rejected`). Ignored by Stripe for `manual`.",
    )
    weekly_anchor: Weekday | None = Field(default=None, description="Required for `weekly`.")
    monthly_anchor: int | None = Field(
        default=None, ge=1, le=31, description="Required for `monthly` (29-31: last day)."
    )

    @model_validator(mode="after")
    def _anchors_match_interval(self) -> PayoutScheduleUpdate:
        if self.interval == "weekly" and self.weekly_anchor is None:
            raise ValueError("weekly_anchor is required when interval is weekly")
        if self.interval != "weekly" and self.weekly_anchor is not None:
            raise ValueError("weekly_anchor is only allowed when interval is weekly")
        if self.interval == "monthly" and self.monthly_anchor is None:
            raise ValueError("monthly_anchor is required when interval is monthly")
        if self.interval != "monthly" and self.monthly_anchor is not None:
            raise ValueError("monthly_anchor is only allowed when interval is monthly")
        return self


class VendorAdminRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    display_name: str
    country: str
    default_currency: str
    status: VendorStatus
    stripe_account_id: str | None
    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool
    requirements_currently_due: list[str]
    requirements_past_due: list[str]
    requirements_disabled_reason: str | None
    fee_bps_override: int | None
    charge_type_override: ChargeType | None
    suspended_at: datetime | None
    deauthorized_at: datetime | None
    can_accept_payments: bool
    created_at: datetime


class VendorAdminPage(BaseModel):
    items: list[VendorAdminRead]
    next_cursor: str | None


class VendorAdminUpdate(BaseModel):
    """Only the fields sent are changed; `null` clears an override."""

    fee_bps_override: int | None = Field(default=None, ge=0, le=10_000)
    charge_type_override: ChargeType | None = None
    suspended: bool | None = Field(
        default=None, description="Suspended vendors cannot take new orders."
    )
