"""A vendor's status, derived in ONE place from the Stripe account object.

`derive_account_state(account)` is a pure function of the `Account` (as Stripe sends it in
`account.updated` or answers `GET /v1/accounts/{id}`); nothing else decides a vendor's status.

| status        | when (checked in this order)                                                  |
| ------------- | ----------------------------------------------------------------------------- |
| `rejected`    | `requirements.disabled_reason` is `rejected.*` (fraud, terms of service, ...) |
| `disabled`    | `disabled_reason` is `listed`, `platform_paused` or `other`: Stripe or the    |
|               | platform turned the account off; the vendor cannot fix it by onboarding       |
| `onboarding`  | `details_submitted` is false (a new account, onboarding not finished)         |
| `active`      | charges and payouts enabled, and the `transfers` capability (when reported)   |
|               | is active: destination and separate charges need it                           |
| `restricted`  | anything else: details submitted but requirements due, pending verification,  |
|               | under review, or a capability inactive                                        |

`not_started` (no account yet) is never derived: it is the state before an account exists. A
deauthorized account (`account.application.deauthorized`) is `disabled` for good; that is applied
by `service.mark_deauthorized`, and an account update never revives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from marketplace_api.integrations.stripe.objects import Account
from marketplace_api.vendors.models import VendorStatus

# Reasons the vendor can resolve (provide information, wait for verification): `restricted`.
# Reasons only Stripe or the platform can lift: `disabled`. `rejected.*`: `rejected`.
DISABLING_REASONS = frozenset({"listed", "platform_paused", "other"})

# Transitions: Stripe is the authority on an account, so a newer snapshot may move a vendor from
# any derived status to any other (a rejected account can be reinstated after an appeal). What the
# state machine forbids, in `service.apply_stripe_account`'s conditional UPDATE: an older snapshot
# overwriting a newer one, any change after deauthorization (`disabled` for good), and going back
# to `not_started` (never derived).


@dataclass(frozen=True, slots=True)
class AccountState:
    """What we store from a Stripe account."""

    stripe_account_id: str
    status: VendorStatus
    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool
    requirements_currently_due: list[str] = field(default_factory=list)
    requirements_past_due: list[str] = field(default_factory=list)
    requirements_disabled_reason: str | None = None
    capabilities: dict[str, str] = field(default_factory=dict)
    payout_schedule: dict[str, Any] | None = None

    def columns(self) -> dict[str, Any]:
        """The vendor columns this state sets (`stripe_account_synced_at` is the caller's)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def derive_status(account: Account) -> VendorStatus:
    disabled_reason = account.requirements.disabled_reason
    if disabled_reason and disabled_reason.startswith("rejected."):
        return VendorStatus.rejected
    if disabled_reason in DISABLING_REASONS:
        return VendorStatus.disabled
    if not account.details_submitted:
        return VendorStatus.onboarding
    transfers = account.capability("transfers")
    if account.charges_enabled and account.payouts_enabled and transfers in (None, "active"):
        return VendorStatus.active
    return VendorStatus.restricted


def derive_account_state(account: Account) -> AccountState:
    requirements = account.requirements
    schedule = account.settings.payouts.schedule
    return AccountState(
        stripe_account_id=account.id,
        status=derive_status(account),
        charges_enabled=account.charges_enabled,
        payouts_enabled=account.payouts_enabled,
        details_submitted=account.details_submitted,
        requirements_currently_due=list(requirements.currently_due),
        requirements_past_due=list(requirements.past_due),
        requirements_disabled_reason=requirements.disabled_reason or None,
        capabilities=dict(account.capabilities),
        payout_schedule=dict(schedule) if schedule is not None else None,
    )
