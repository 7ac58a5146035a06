"""The Stripe objects we read, typed: only the fields the service uses.

The gateway answers these instead of dicts, and webhook handlers parse `event.data.object` into
them (`parse_object`), so domain code reads attributes and mypy catches a misspelt field. Fields
Stripe may expand (`charge`, `payment_intent`, ...) are typed as the id either way
(`ExpandableId`). Unknown fields are ignored; a field of the wrong type is a `StripeObjectInvalid`
(a forged or corrupted payload), never a crash deeper in the domain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError


def _expandable_id(value: Any) -> Any:
    """`"ch_1"` or an expanded `{"id": "ch_1", ...}` both read as `"ch_1"`."""
    if isinstance(value, Mapping):
        return value.get("id")
    return value


ExpandableId = Annotated[str | None, BeforeValidator(_expandable_id)]


def _none_as_empty(value: Any) -> Any:
    return {} if value is None else value


Metadata = Annotated[dict[str, str], BeforeValidator(_none_as_empty)]


def _none_as_false(value: Any) -> Any:
    return False if value is None else value


def _none_as_no_items(value: Any) -> Any:
    return [] if value is None else value


# Fields Stripe documents as nullable, read as their empty value (a flag off, no items).
Flag = Annotated[bool, BeforeValidator(_none_as_false)]
Strings = Annotated[list[str], BeforeValidator(_none_as_no_items)]


def _capability_statuses(value: Any) -> Any:
    """`{"transfers": "active"}`; an expanded capability `{"status": "active", ...}` reads as its
    status; a capability without a status is left out."""
    if not isinstance(value, Mapping):
        return _none_as_empty(value)
    statuses = {}
    for name, capability in value.items():
        status = capability.get("status") if isinstance(capability, Mapping) else capability
        if isinstance(status, str):
            statuses[name] = status
    return statuses


Capabilities = Annotated[dict[str, str], BeforeValidator(_capability_statuses)]

# Strict: an amount is an int (never "100", 1.0 or true), a status a str. Unknown fields ignored.
_CONFIG = ConfigDict(extra="ignore", frozen=True, strict=True)


def metadata_value(metadata: Mapping[str, str], key: str) -> str | None:
    """The value we put under `key` in a Stripe object's metadata, None when absent or empty."""
    return metadata.get(key) or None


class StripeObjectInvalid(ValueError):
    """A Stripe object whose fields do not have the types Stripe documents."""


class StripeModel(BaseModel):
    """A Stripe object: it has an id."""

    model_config = _CONFIG

    id: str
    livemode: bool = False


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
    # `latest_charge` again, when expanded: what it tells beyond its id.
    expanded_charge: Annotated[ExpandedCharge | None, BeforeValidator(_expanded_only)] = Field(
        default=None, validation_alias=AliasChoices("latest_charge")
    )


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
    currently_due: Strings = Field(default_factory=list)
    eventually_due: Strings = Field(default_factory=list)
    past_due: Strings = Field(default_factory=list)
    disabled_reason: str | None = None
    current_deadline: int | None = None


class Account(StripeModel):
    country: str | None = None
    default_currency: str | None = None
    created: int | None = None
    charges_enabled: Flag = False
    payouts_enabled: Flag = False
    details_submitted: Flag = False
    capabilities: Capabilities = Field(default_factory=dict)
    requirements: Part[AccountRequirements] = Field(default_factory=AccountRequirements)
    metadata: Metadata = Field(default_factory=dict)
    settings: Part[AccountSettings] = Field(default_factory=lambda: AccountSettings())

    def capability(self, name: str) -> str | None:
        """The status of capability `name` (`transfers`, ...), None when not requested."""
        return self.capabilities.get(name)


# --- What the webhook handlers read beyond the models above ---------------------------------


def _expanded_only(value: Any) -> Any:
    """An expandable field as its object when expanded, None when it is only an id."""
    return None if isinstance(value, str) else value


class BalanceTransactionFee(StripePart):
    fee: int | None = None


class ExpandedCharge(StripePart):
    """A PaymentIntent's `latest_charge` when expanded: its destination transfer and fee."""

    transfer: ExpandableId = None
    balance_transaction: Annotated[
        BalanceTransactionFee | None, BeforeValidator(_expanded_only)
    ] = None


class RefundList(StripePart):
    data: list[Refund] = Field(default_factory=list)


class RefundedCharge(StripeModel):
    """The charge of `charge.refunded`: only the refunds it carries (when expanded) are read."""

    refunds: Part[RefundList] = Field(default_factory=RefundList)


def _true_only(value: Any) -> bool:
    return value is True


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict_or_none(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


class EventData(StripePart):
    object: dict[str, Any]
    # Only handed on to the handler: anything but an object reads as absent.
    previous_attributes: Annotated[dict[str, Any] | None, BeforeValidator(_dict_or_none)] = None


class EventEnvelope(StripeModel):
    """A webhook event around its object (`data.object`, parsed by each handler into its model).
    `livemode` and `api_version` are only recorded: a value of another type reads as absent."""

    type: str
    created: int
    account: str | None = None
    livemode: Annotated[bool, BeforeValidator(_true_only)] = False
    api_version: Annotated[str | None, BeforeValidator(_str_or_none)] = None
    data: EventData


# --- the gateway's other answers, and the objects of account and fee events -----------------


class BalanceTransaction(StripeModel):
    amount: int
    fee: int = 0


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
