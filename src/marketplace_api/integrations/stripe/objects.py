"""The Stripe objects we read, typed: only the fields the service uses.

The gateway answers these instead of dicts, and webhook handlers parse `event.data.object` into
them (`parse_object`), so domain code reads attributes and mypy catches a misspelt field. Fields
Stripe may expand (`charge`, `payment_intent`, ...) are typed as the id either way
(`ExpandableId`). Unknown fields are ignored; a field of the wrong type is a `StripeObjectInvalid`
(a forged or corrupted payload), never a crash deeper in the domain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)


def _expandable_id(value: Any) -> Any:
    """`"ch_1"` or an expanded `{"id": "ch_1", ...}` both read as `"ch_1"`."""
    if isinstance(value, Mapping):
        return value.get("id")
    return value


ExpandableId = Annotated[str | None, BeforeValidator(_expandable_id)]


def _none_as_empty(value: Any) -> Any:
    return {} if value is None else value


Metadata = Annotated[dict[str, str], BeforeValidator(_none_as_empty)]

# Strict: an amount is an int (never "100", 1.0 or true), a status a str. Unknown fields ignored.
_CONFIG = ConfigDict(extra="ignore", frozen=True, strict=True)


class StripeObjectInvalid(ValueError):
    """A Stripe object whose fields do not have the types Stripe documents."""


class StripeModel(BaseModel):
    """A Stripe object: it has an id.

    `EXPANDED` names the expandable fields whose expanded object we read, and the field holding
    it: the field itself stays the id, the object (when Stripe expanded it) goes to the other one.
    `model_dump()` folds it back, so a dump is Stripe's shape and parses to the same model.
    """

    model_config = _CONFIG
    EXPANDED: ClassVar[Mapping[str, str]] = {}

    id: str
    livemode: bool = False

    @model_validator(mode="before")
    @classmethod
    def _keep_expanded(cls, data: Any) -> Any:
        if not cls.EXPANDED or not isinstance(data, Mapping):
            return data
        found = {to: data[name] for name, to in cls.EXPANDED.items() if _is_object(data.get(name))}
        return {**data, **found} if found else data

    @model_serializer(mode="wrap")
    def _fold_expanded(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name, to in self.EXPANDED.items():
            expanded = data.pop(to, None)
            if expanded is not None:
                data[name] = expanded
        return data


def _is_object(value: Any) -> bool:
    return isinstance(value, Mapping)


class StripePart(BaseModel):
    """A nested part of a Stripe object (no id of its own); `null` reads as its defaults."""

    model_config = _CONFIG


_M = TypeVar("_M", bound=StripeModel)
_P = TypeVar("_P", bound=StripePart)
Part = Annotated[_P, BeforeValidator(_none_as_empty)]


def parse_object(model: type[_M], data: Mapping[str, Any]) -> _M:
    """`data` (a webhook's `data.object`, an SDK answer's `to_dict()`) as `model`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise StripeObjectInvalid(_invalid(model, exc)) from None


def _invalid(model: type[BaseModel], exc: ValidationError) -> str:
    fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
    return f"{model.__name__} with invalid fields: {fields}"


class PaymentIntentTransferData(StripePart):
    destination: ExpandableId = None
    amount: int | None = None


class LastPaymentError(StripePart):
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None
    type: str | None = None


class PaymentIntent(StripeModel):
    status: str
    amount: int
    currency: str
    client_secret: str | None = None
    latest_charge: ExpandableId = None
    application_fee_amount: int | None = None
    on_behalf_of: ExpandableId = None
    transfer_data: PaymentIntentTransferData | None = None
    transfer_group: str | None = None
    payment_method: ExpandableId = None
    last_payment_error: LastPaymentError | None = None
    metadata: Metadata = Field(default_factory=dict)
    # Asked for on retrieve: the charge carries the destination transfer and Stripe's fee.
    EXPANDED = {"latest_charge": "expanded_latest_charge"}
    expanded_latest_charge: LatestCharge | None = None


class Charge(StripeModel):
    amount: int
    currency: str
    status: str | None = None
    payment_intent: ExpandableId = None
    amount_refunded: int = 0
    refunded: bool = False
    disputed: bool = False
    transfer: ExpandableId = None
    application_fee: ExpandableId = None
    balance_transaction: ExpandableId = None
    metadata: Metadata = Field(default_factory=dict)


class Refund(StripeModel):
    amount: int
    currency: str
    status: str | None = None
    charge: ExpandableId = None
    payment_intent: ExpandableId = None
    reason: str | None = None
    failure_reason: str | None = None
    transfer_reversal: ExpandableId = None
    metadata: Metadata = Field(default_factory=dict)


class TransferReversal(StripeModel):
    amount: int
    currency: str
    transfer: ExpandableId = None
    metadata: Metadata = Field(default_factory=dict)


class TransferReversals(StripePart):
    data: list[TransferReversal] = Field(default_factory=list)


class Transfer(StripeModel):
    amount: int
    currency: str
    destination: ExpandableId = None
    amount_reversed: int = 0
    reversed: bool = False
    source_transaction: ExpandableId = None
    transfer_group: str | None = None
    reversals: Part[TransferReversals] = Field(default_factory=TransferReversals)
    metadata: Metadata = Field(default_factory=dict)


class EvidenceDetails(StripePart):
    due_by: int | None = None


class Dispute(StripeModel):
    amount: int
    currency: str
    status: str
    reason: str | None = None
    charge: ExpandableId = None
    payment_intent: ExpandableId = None
    evidence_details: Part[EvidenceDetails] = Field(default_factory=EvidenceDetails)
    metadata: Metadata = Field(default_factory=dict)
    # Funds withdrawn (< 0) and reinstated (> 0), as Stripe moved them.
    balance_transactions: list[BalanceTransaction] = Field(default_factory=list)


class Payout(StripeModel):
    amount: int
    currency: str
    status: str | None = None
    arrival_date: int | None = None
    method: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


class CheckoutSession(StripeModel):
    status: str | None = None
    payment_status: str | None = None
    url: str | None = None
    payment_intent: ExpandableId = None
    amount_total: int | None = None
    currency: str | None = None
    customer_email: str | None = None
    client_reference_id: str | None = None
    success_url: str | None = None
    cancel_url: str | None = None
    metadata: Metadata = Field(default_factory=dict)


class AccountRequirements(StripePart):
    currently_due: list[str] = Field(default_factory=list)
    eventually_due: list[str] = Field(default_factory=list)
    past_due: list[str] = Field(default_factory=list)
    disabled_reason: str | None = None
    current_deadline: int | None = None


class Account(StripeModel):
    country: str | None = None
    default_currency: str | None = None
    created: int | None = None
    charges_enabled: bool = False
    payouts_enabled: bool = False
    details_submitted: bool = False
    capabilities: Metadata = Field(default_factory=dict)
    requirements: Part[AccountRequirements] = Field(default_factory=AccountRequirements)
    metadata: Metadata = Field(default_factory=dict)
    settings: Part[AccountSettings] = Field(default_factory=lambda: AccountSettings())


# --- the gateway's other answers, and the objects of account and fee events -----------------


class BalanceTransaction(StripeModel):
    amount: int
    fee: int = 0


class LatestCharge(StripeModel):
    """The parts of a PaymentIntent's expanded `latest_charge` we read."""

    transfer: ExpandableId = None
    balance_transaction: ExpandableId = None
    EXPANDED = {"balance_transaction": "expanded_balance_transaction"}
    expanded_balance_transaction: BalanceTransaction | None = None


class AccountPayoutSettings(StripePart):
    schedule: dict[str, Any] | None = None


class AccountSettings(StripePart):
    payouts: Part[AccountPayoutSettings] = Field(default_factory=AccountPayoutSettings)


class Capability(StripePart):
    """`capability.updated`'s object: its id is the capability's name (`transfers`)."""

    id: str | None = None
    account: ExpandableId = None
    status: str | None = None


class AccountLink(StripePart):
    """A hosted onboarding link: single use, expires within minutes. It has no id."""

    url: str
    expires_at: int | None = None


class LoginLink(StripePart):
    url: str


class BalanceAmount(StripePart):
    amount: int
    currency: str


class Balance(StripePart):
    """A connected account's balance; it has no id."""

    available: list[BalanceAmount] = Field(default_factory=list)
    pending: list[BalanceAmount] = Field(default_factory=list)


def parse_part(model: type[_P], data: Mapping[str, Any]) -> _P:
    """`data` as `model`, for the answers that have no id (links, balances)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise StripeObjectInvalid(_invalid(model, exc)) from None


class FeeRefund(StripeModel):
    amount: int


class FeeRefunds(StripePart):
    data: list[FeeRefund] | None = None
    has_more: bool = False


class ApplicationFee(StripeModel):
    """`application_fee.*`'s object. Amounts may be missing from an event we only log."""

    amount: int | None = None
    currency: str | None = None
    charge: ExpandableId = None
    account: ExpandableId = None
    amount_refunded: int | None = None
    refunds: FeeRefunds | None = None
