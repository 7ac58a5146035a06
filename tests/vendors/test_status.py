"""The vendor status is derived from each shape of Stripe account, in one function."""

from __future__ import annotations

from typing import Any

import pytest

from marketplace_api.vendors.models import VendorStatus
from marketplace_api.vendors.status import AccountState, derive_account_state
from tests.fixtures.accounts import (
    NEW_REQUIREMENTS,
    NO_REQUIREMENTS,
    account,
    active_account,
    as_account,
)


def _derive(data: dict[str, Any]) -> AccountState:
    return derive_account_state(as_account(data))


def test_new_account_is_onboarding() -> None:
    # A fresh account has disabled_reason requirements.past_due: still onboarding, not restricted.
    state = _derive(account("acct_new"))
    assert state.status is VendorStatus.onboarding
    assert state.stripe_account_id == "acct_new"
    assert not state.charges_enabled
    assert not state.details_submitted
    assert state.requirements_currently_due == NEW_REQUIREMENTS["currently_due"]
    assert state.requirements_past_due == ["business_type", "external_account"]
    assert state.requirements_disabled_reason == "requirements.past_due"
    assert state.capabilities == {"card_payments": "inactive", "transfers": "inactive"}
    assert state.payout_schedule == {"delay_days": 2, "interval": "daily"}


def test_details_submitted_with_requirements_due_is_restricted() -> None:
    requirements = {
        **NO_REQUIREMENTS,
        "currently_due": ["individual.verification.document"],
        "disabled_reason": "requirements.pending_verification",
    }
    state = _derive(account(details_submitted=True, requirements=requirements))
    assert state.status is VendorStatus.restricted
    assert state.requirements_currently_due == ["individual.verification.document"]
    assert state.requirements_disabled_reason == "requirements.pending_verification"


def test_charges_and_payouts_enabled_is_active() -> None:
    state = _derive(active_account())
    assert state.status is VendorStatus.active
    assert state.charges_enabled
    assert state.payouts_enabled
    assert state.requirements_currently_due == []
    assert state.requirements_disabled_reason is None


def test_charges_enabled_but_payouts_disabled_is_restricted() -> None:
    state = _derive(active_account(payouts_enabled=False))
    assert state.status is VendorStatus.restricted


def test_inactive_transfers_capability_blocks_active() -> None:
    state = _derive(
        active_account(capabilities={"card_payments": "active", "transfers": "pending"})
    )
    assert state.status is VendorStatus.restricted


@pytest.mark.parametrize(
    "reason",
    ["rejected.fraud", "rejected.terms_of_service", "rejected.listed", "rejected.other"],
)
def test_rejected_reasons_are_rejected(reason: str) -> None:
    requirements = {**NO_REQUIREMENTS, "disabled_reason": reason}
    state = _derive(account(details_submitted=True, requirements=requirements))
    assert state.status is VendorStatus.rejected
    assert state.requirements_disabled_reason == reason


@pytest.mark.parametrize("reason", ["listed", "platform_paused", "other"])
def test_reasons_only_stripe_or_the_platform_can_lift_are_disabled(reason: str) -> None:
    requirements = {**NO_REQUIREMENTS, "disabled_reason": reason}
    # Even before details were submitted: onboarding would not help.
    state = _derive(account(details_submitted=False, requirements=requirements))
    assert state.status is VendorStatus.disabled


@pytest.mark.parametrize(
    "reason",
    ["requirements.past_due", "under_review", "action_required.requested_capabilities"],
)
def test_reasons_the_vendor_can_resolve_are_restricted(reason: str) -> None:
    requirements = {**NO_REQUIREMENTS, "disabled_reason": reason}
    state = _derive(account(details_submitted=True, requirements=requirements))
    assert state.status is VendorStatus.restricted


def test_missing_optional_fields_are_tolerated() -> None:
    state = _derive({"id": "acct_bare", "object": "account"})
    assert state.status is VendorStatus.onboarding
    assert state.capabilities == {}
    assert state.payout_schedule is None
    assert state.requirements_currently_due == []
