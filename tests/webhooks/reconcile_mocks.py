"""Stripe list answers for the reconcile tests."""

from __future__ import annotations

from typing import Any

import httpx
import respx

from tests.fixtures.accounts import active_account
from tests.fixtures.stripe import ok


def stripe_list(url: str, data: list[dict[str, Any]]) -> httpx.Response:
    return ok({"object": "list", "url": url, "has_more": False, "data": data})


def mock_nothing_listed(stripe_api: respx.MockRouter) -> dict[str, respx.Route]:
    """Stripe lists no dispute (platform or connected account) and no payout."""
    return {
        path: stripe_api.get(path).mock(return_value=stripe_list(path, []))
        for path in ("/v1/disputes", "/v1/payouts")
    }


def mock_active_accounts(stripe_api: respx.MockRouter) -> respx.Route:
    """Any connected account not mocked before: active, as the order factories' vendors are."""
    return stripe_api.get(url__regex=r"/v1/accounts/acct_\w+$").mock(
        side_effect=lambda request: ok(active_account(request.url.path.rsplit("/", 1)[1]))
    )
