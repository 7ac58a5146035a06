"""The simulator mounted with respx, and the service's real gateway talking to it (no DB)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx
import stripe

from marketplace_api.config import Settings
from marketplace_api.integrations.stripe import StripeGateway, build_stripe_client
from marketplace_api.stripe_simulator import StripeSimulator

API = "https://api.stripe.com"


@pytest.fixture
def sim() -> StripeSimulator:
    return StripeSimulator(seed=7, public_url="http://testserver")


@pytest.fixture
def sim_api(sim: StripeSimulator) -> Iterator[respx.MockRouter]:
    """Every request to api.stripe.com answered by the simulator; `sim_api.calls` records them."""
    with respx.mock(assert_all_called=False) as router:
        router.route(host="api.stripe.com").mock(side_effect=sim.handle)
        yield router


def sim_settings() -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        stripe_secret_key="sk_test_simulated",
        stripe_api_base=API,
        stripe_max_network_retries=0,
    )


@pytest.fixture
def client(sim_api: respx.MockRouter) -> stripe.StripeClient:
    built = build_stripe_client(sim_settings())
    assert built is not None
    return built


@pytest.fixture
def gateway(client: stripe.StripeClient) -> StripeGateway:
    return StripeGateway(client)
