"""`marketplace-api stripe-webhooks`: two endpoints (platform, connect=true) with exactly the
event types we handle, API version pinned, secrets printed only on creation."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
import respx

from marketplace_api.config import Settings, get_settings
from marketplace_api.integrations.stripe import (
    STRIPE_API_VERSION,
    StripeGateway,
    build_stripe_client,
)
from marketplace_api.webhooks.subscriptions import (
    UPCOMING_EVENT_TYPES,
    endpoint_event_types,
    sync_webhook_endpoints,
)
from tests.fixtures.stripe import STRIPE_API_BASE, form, ok
from tests.webhooks.conftest import Recorder

URL = "https://api.shop.example/webhooks/stripe"


def _endpoint(
    we_id: str,
    events: list[str],
    role: str | None,
    *,
    url: str = URL,
    secret: str | None = None,
    api_version: str = STRIPE_API_VERSION,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": we_id,
        "object": "webhook_endpoint",
        "api_version": api_version,
        "application": None,
        "created": 1793000000,
        "description": None,
        "enabled_events": events,
        "livemode": False,
        "metadata": {"marketplace_endpoint": role} if role else {},
        "status": "enabled",
        "url": url,
    }
    if secret:
        body["secret"] = secret
    return body


def _listing(*endpoints: dict[str, Any]) -> httpx.Response:
    return ok(
        {
            "object": "list",
            "url": "/v1/webhook_endpoints",
            "has_more": False,
            "data": list(endpoints),
        }
    )


def _events_of(params: dict[str, str]) -> list[str]:
    indexed = {
        int(m.group(1)): v
        for k, v in params.items()
        if (m := re.fullmatch(r"enabled_events\[(\d+)\]", k))
    }
    return [indexed[i] for i in range(len(indexed))]


@pytest.fixture
def gateway(settings: Settings) -> StripeGateway:
    client = build_stripe_client(settings)
    assert client is not None
    return StripeGateway(client)


def test_event_types_are_split_between_platform_and_connect(recorder: Recorder) -> None:
    wanted = endpoint_event_types()
    platform, connect = set(wanted["platform"]), set(wanted["connect"])
    # Connected-account objects arrive only on the Connect endpoint...
    for event_type in (
        "account.updated",
        "capability.updated",
        "account.application.deauthorized",
        "payout.paid",
        "payout.failed",
    ):
        assert event_type in connect
        assert event_type not in platform
    # ...transfers and application fees only on the platform one...
    for event_type in ("transfer.created", "transfer.reversed", "application_fee.refunded"):
        assert event_type in platform
        assert event_type not in connect
    # ...and payments (destination/separate on the platform, direct on the account) on both.
    for event_type in (
        "payment_intent.succeeded",
        "payment_intent.processing",
        "checkout.session.completed",
        "charge.refunded",
        "refund.updated",
        "charge.dispute.created",
    ):
        assert event_type in platform
        assert event_type in connect
    assert set(UPCOMING_EVENT_TYPES) <= platform | connect
    # Test-only handler types are not Stripe types: never subscribed.
    assert not any(t.startswith("test.") for t in platform | connect)


async def test_creates_both_endpoints_with_exact_params(
    stripe_api: respx.MockRouter, gateway: StripeGateway
) -> None:
    wanted = endpoint_event_types()
    stripe_api.get("/v1/webhook_endpoints").mock(return_value=_listing())
    create = stripe_api.post("/v1/webhook_endpoints").mock(
        side_effect=[
            ok(_endpoint("we_platform", wanted["platform"], "platform", secret="whsec_p")),
            ok(_endpoint("we_connect", wanted["connect"], "connect", secret="whsec_c")),
        ]
    )
    plans = await sync_webhook_endpoints(gateway, URL)

    assert [(p.role, p.action, p.endpoint_id, p.secret) for p in plans] == [
        ("platform", "create", "we_platform", "whsec_p"),
        ("connect", "create", "we_connect", "whsec_c"),
    ]
    assert create.call_count == 2
    platform_req, connect_req = (call.request for call in create.calls)
    for request, role, connect in (
        (platform_req, "platform", "false"),
        (connect_req, "connect", "true"),
    ):
        params = form(request)
        assert params["url"] == URL
        assert params["connect"] == connect
        assert params["api_version"] == STRIPE_API_VERSION
        assert params["metadata[marketplace_endpoint]"] == role
        assert params["enabled_events[0]"] == wanted[role][0]
        assert _events_of(params) == wanted[role]
        assert request.headers["Idempotency-Key"].startswith("webhook-endpoint:")
        assert "Stripe-Account" not in request.headers
    assert "account.updated" in _events_of(form(connect_req))
    assert platform_req.headers["Idempotency-Key"] != connect_req.headers["Idempotency-Key"]


async def test_updates_a_stale_endpoint_and_leaves_a_current_one(
    stripe_api: respx.MockRouter, gateway: StripeGateway
) -> None:
    wanted = endpoint_event_types()
    stripe_api.get("/v1/webhook_endpoints").mock(
        return_value=_listing(
            _endpoint("we_platform", list(reversed(wanted["platform"])), "platform"),
            _endpoint("we_connect", ["account.updated"], "connect"),
            _endpoint("we_elsewhere", ["*"], "connect", url="https://other.example/hook"),
        )
    )
    update = stripe_api.post("/v1/webhook_endpoints/we_connect").mock(
        return_value=ok(_endpoint("we_connect", wanted["connect"], "connect"))
    )
    create = stripe_api.post("/v1/webhook_endpoints")
    plans = await sync_webhook_endpoints(gateway, URL)

    assert [(p.role, p.action, p.endpoint_id, p.secret) for p in plans] == [
        ("platform", "unchanged", "we_platform", None),
        ("connect", "update", "we_connect", None),
    ]
    assert not create.called
    params = form(update.calls.last.request)
    assert _events_of(params) == wanted["connect"]
    assert params["disabled"] == "false"
    assert "connect" not in params  # cannot be updated
    assert "api_version" not in params


async def test_dry_run_changes_nothing(
    stripe_api: respx.MockRouter, gateway: StripeGateway
) -> None:
    stripe_api.get("/v1/webhook_endpoints").mock(
        return_value=_listing(_endpoint("we_old", ["charge.succeeded"], None))
    )
    writes = stripe_api.post(url__regex=r".*/v1/webhook_endpoints.*")
    plans = await sync_webhook_endpoints(gateway, URL, dry_run=True)
    assert [p.action for p in plans] == ["create", "create"]
    assert not writes.called
    assert any("we_old" in w for w in plans[0].warnings)  # same URL, unknown role: flagged


def test_cli_prints_the_new_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from marketplace_api.cli import main

    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_cli")
    monkeypatch.setenv("STRIPE_API_BASE", STRIPE_API_BASE)
    monkeypatch.setenv("STRIPE_MAX_NETWORK_RETRIES", "0")
    get_settings.cache_clear()
    wanted = endpoint_event_types()
    try:
        with respx.mock(base_url=STRIPE_API_BASE, assert_all_called=True) as api:
            api.get("/v1/webhook_endpoints").mock(
                return_value=_listing(_endpoint("we_platform", wanted["platform"], "platform"))
            )
            api.post("/v1/webhook_endpoints").mock(
                return_value=ok(
                    _endpoint("we_connect", wanted["connect"], "connect", secret="whsec_new")
                )
            )
            assert main(["stripe-webhooks", "--url", URL]) == 0
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert "platform endpoint (connect=false): unchanged we_platform" in out
    assert "connect endpoint (connect=true): create we_connect" in out
    assert "  whsec_new" in out
    assert out.count("whsec_") == 1


def test_cli_refuses_a_non_https_url(capsys: pytest.CaptureFixture[str]) -> None:
    from marketplace_api.cli import main

    assert main(["stripe-webhooks", "--url", "http://shop.example/webhooks/stripe"]) == 2
    assert "https" in capsys.readouterr().err


class _StripeEndpoints:
    """Stripe's webhook endpoints over respx, stateful: what was created is listed afterwards.
    `fail_creates` create calls (counted from the next one) fail with a 500 after the first
    `fail_after` succeed."""

    def __init__(self, api: respx.MockRouter) -> None:
        self.endpoints: list[dict[str, Any]] = []
        self.fail_after: int | None = None
        self.creates = 0
        self.deleted: list[str] = []
        api.get("/v1/webhook_endpoints").mock(side_effect=lambda _: _listing(*self.endpoints))
        self.create = api.post("/v1/webhook_endpoints").mock(side_effect=self._create)
        api.post(url__regex=r"/v1/webhook_endpoints/we_\w+$").mock(side_effect=self._update)
        api.delete(url__regex=r"/v1/webhook_endpoints/we_\w+$").mock(side_effect=self._delete)

    def _create(self, request: httpx.Request) -> httpx.Response:
        from tests.fixtures.stripe import stripe_error

        self.creates += 1
        if self.fail_after is not None and self.creates > self.fail_after:
            return stripe_error(500, type_="api_error")
        params = form(request)
        we_id = f"we_{len(self.endpoints) + 1}{params['metadata[marketplace_endpoint]']}"
        body = _endpoint(
            we_id,
            _events_of(params),
            params["metadata[marketplace_endpoint]"],
            secret=f"whsec_{we_id}",
        )
        body["metadata"] = {
            k[len("metadata[") : -1]: v for k, v in params.items() if k.startswith("metadata[")
        }
        self.endpoints.append({k: v for k, v in body.items() if k != "secret"})
        return ok(body)

    def _update(self, request: httpx.Request) -> httpx.Response:
        we_id = request.url.path.rsplit("/", 1)[1]
        [endpoint] = [e for e in self.endpoints if e["id"] == we_id]
        endpoint["enabled_events"] = _events_of(form(request))
        return ok(endpoint)

    def _delete(self, request: httpx.Request) -> httpx.Response:
        we_id = request.url.path.rsplit("/", 1)[1]
        self.deleted.append(we_id)
        self.endpoints = [e for e in self.endpoints if e["id"] != we_id]
        return ok({"id": we_id, "object": "webhook_endpoint", "deleted": True})


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_cli")
    monkeypatch.setenv("STRIPE_API_BASE", STRIPE_API_BASE)
    monkeypatch.setenv("STRIPE_MAX_NETWORK_RETRIES", "0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_a_failed_second_create_keeps_the_first_secret_and_a_rerun_does_not_duplicate(
    cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from marketplace_api.cli import main

    with respx.mock(base_url=STRIPE_API_BASE, assert_all_called=False) as api:
        stripe = _StripeEndpoints(api)
        stripe.fail_after = 1  # the platform endpoint is created, the Connect one fails

        assert main(["stripe-webhooks", "--url", URL]) == 1
        first = capsys.readouterr()
        # The platform endpoint's secret, shown by Stripe only once, was printed before the
        # failing call.
        assert "NEW SIGNING SECRET of the platform endpoint" in first.out
        assert "  whsec_we_1platform" in first.out
        assert "Running the same command again is safe" in first.err

        stripe.fail_after = None
        assert main(["stripe-webhooks", "--url", URL]) == 0
        second = capsys.readouterr().out

    roles = sorted(e["metadata"]["marketplace_endpoint"] for e in stripe.endpoints)
    assert roles == ["connect", "platform"]  # one of each: the rerun created no second platform
    assert "platform endpoint (connect=false): unchanged we_1platform" in second
    assert "connect endpoint (connect=true): create we_2connect" in second
    assert "  whsec_we_2connect" in second
    assert "whsec_we_1platform" not in second  # Stripe cannot show it again...
    # ...so the operator is told how to replace it if it was lost.
    assert f"marketplace-api stripe-webhooks --url {URL} --recreate platform" in second


def test_recreate_replaces_an_endpoint_whose_secret_was_lost(
    cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from marketplace_api.cli import main

    with respx.mock(base_url=STRIPE_API_BASE, assert_all_called=False) as api:
        stripe = _StripeEndpoints(api)
        assert main(["stripe-webhooks", "--url", URL]) == 0
        capsys.readouterr()

        assert main(["stripe-webhooks", "--url", URL, "--recreate", "connect"]) == 0
        out = capsys.readouterr().out
        replacement = stripe.create.calls.last.request

    new_id = "we_3connect"
    assert stripe.deleted == ["we_2connect"]  # once the replacement existed
    assert [e["id"] for e in stripe.endpoints] == ["we_1platform", new_id]
    assert f"connect endpoint (connect=true): recreate {new_id}" in out
    assert f"  whsec_{new_id}" in out
    assert form(replacement)["metadata[replaces]"] == "we_2connect"
    # A new request (its own idempotency key), not a replay of the first creation.
    assert (
        stripe.create.calls[1].request.headers["Idempotency-Key"]
        != (replacement.headers["Idempotency-Key"])
    )
