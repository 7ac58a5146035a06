"""What we send to Stripe for a payment, derived only from our rows (so a retry with the same
idempotency key sends exactly the same parameters, as Stripe requires).

| charge type | where the PaymentIntent lives | money parameters |
| --- | --- | --- |
| destination | platform | `transfer_data[destination]` = vendor, `application_fee_amount` = fee (`on_behalf_of` = vendor when enabled) |
| direct | vendor's account (`Stripe-Account`) | `application_fee_amount` = fee |
| separate | platform | `transfer_group` = `payment_<id>`; vendors are paid later by transfers of `order.vendor_amount` |
"""  # noqa: E501

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from marketplace_api.config import ChargeType
from marketplace_api.orders.models import Order
from marketplace_api.payments.models import Payment

METADATA_VALUE_MAX = 500
_DESCRIPTOR_OK = re.compile(r"^[A-Za-z0-9 ]{1,22}$")


def statement_descriptor_suffix(name: str) -> str | None:
    """The vendor's name as the card statement suffix, when Stripe would accept it: at most 22
    Latin letters, digits and spaces with at least one letter (so none of `< > \\ ' " *`).
    Otherwise None and the account's default descriptor is used."""
    candidate = " ".join(name.split())
    if not _DESCRIPTOR_OK.match(candidate) or not re.search(r"[A-Za-z]", candidate):
        return None
    return candidate


def idempotency_key(payment: Payment, operation: str) -> str:
    """`payment:<id>:create`, `payment:<id>:cancel`, `payment:<id>:checkout_session:<n>`."""
    return f"payment:{payment.id}:{operation}"


def metadata(payment: Payment, orders: Sequence[Order]) -> dict[str, str]:
    """Our ids, so every Stripe object leads back to our rows. Values are capped at 500 characters
    by Stripe: order ids that do not fit are left out (`order_ids_truncated`); `payment_id` always
    identifies everything."""
    ids = [str(o.id) for o in sorted(orders, key=lambda o: str(o.id))]
    joined = ",".join(ids)
    data = {"payment_id": str(payment.id), "buyer_id": str(payment.buyer_id)}
    if len(joined) > METADATA_VALUE_MAX:
        kept: list[str] = []
        for order_id in ids:
            if len(",".join([*kept, order_id])) > METADATA_VALUE_MAX:
                break
            kept.append(order_id)
        joined = ",".join(kept)
        data["order_ids_truncated"] = "true"
    data["order_ids"] = joined
    return data


def charge_parameters(
    payment: Payment, orders: Sequence[Order], *, on_behalf_of: bool = False
) -> dict[str, Any]:
    """The charge-type specific keyword arguments of the gateway's create calls."""
    fee = payment.platform_fee or None  # no application fee at all rather than a fee of 0
    if payment.charge_type is ChargeType.direct:
        return {"stripe_account": payment.stripe_account_id, "application_fee_amount": fee}
    if payment.charge_type is ChargeType.destination:
        destination = orders[0].vendor_stripe_account_id
        return {
            "transfer_destination": destination,
            "application_fee_amount": fee,
            "on_behalf_of": destination if on_behalf_of else None,
        }
    return {"transfer_group": payment.transfer_group}
