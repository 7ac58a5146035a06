"""The simulator refuses what Stripe refuses, checked on the exact requests the stripe SDK sends
for every gateway call (recorded by respx), and answers errors the SDK maps to the right
exception classes."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import respx
import stripe

from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.stripe_simulator import StripeSimulator
from marketplace_api.stripe_simulator.http import ROUTES
from tests.stripe_simulator.scenario import every_gateway_call, onboarded_account


async def _recorded(gateway: StripeGateway, sim: StripeSimulator, router: respx.MockRouter):
    await every_gateway_call(gateway, sim)
    return [call.request for call in router.calls]


def _with_params(request: httpx.Request, pairs: list[tuple[str, str]]) -> httpx.Request:
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    headers["Idempotency-Key"] = "validation-" + str(time.monotonic_ns())
    if request.method in ("GET", "DELETE"):  # parameters in the query string
        url = request.url.copy_with(query=urlencode(pairs).encode())
        return httpx.Request(request.method, url, headers=headers)
    return httpx.Request(request.method, request.url, headers=headers, content=urlencode(pairs))


def _pairs(request: httpx.Request) -> list[tuple[str, str]]:
    text = (
        request.url.query.decode()
        if request.method in ("GET", "DELETE")
        else request.content.decode()
    )
    return parse_qsl(text, keep_blank_values=True)


def _route_of(request: httpx.Request):
    for route in ROUTES:
        if route.method == request.method and route.pattern.match(request.url.path):
            return route
    raise AssertionError(f"no route for {request.method} {request.url.path}")


async def test_an_unknown_parameter_on_any_call_is_refused_like_stripe(
    gateway: StripeGateway, sim: StripeSimulator, sim_api: respx.MockRouter
) -> None:
    requests = await _recorded(gateway, sim, sim_api)
    assert len({(r.method, _route_of(r).pattern.pattern) for r in requests}) >= 15
    for request in requests:
        answer = sim.handle(_with_params(request, [*_pairs(request), ("surprise", "1")]))
        error = answer.json()["error"]
        assert answer.status_code == 400, request.url
        assert (error["code"], error["param"]) == ("parameter_unknown", "surprise"), request.url


async def test_an_unknown_nested_parameter_is_refused_with_its_bracketed_name(
    gateway: StripeGateway, sim: StripeSimulator, sim_api: respx.MockRouter
) -> None:
    requests = await _recorded(gateway, sim, sim_api)
    checked = 0
    for request in requests:
        nested = [k for k, _ in _pairs(request) if "[" in k and not k.split("[")[1][0].isdigit()]
        objects = {k.split("[")[0] for k in nested} - {"metadata", "expand"}
        for head in sorted(objects):
            answer = sim.handle(_with_params(request, [*_pairs(request), (f"{head}[nope]", "1")]))
            assert answer.json()["error"]["param"] == f"{head}[nope]", request.url
            checked += 1
    assert checked >= 8  # controller, capabilities, business_profile, transfer_data, settings...


async def test_each_required_parameter_missing_is_refused_by_name(
    gateway: StripeGateway, sim: StripeSimulator, sim_api: respx.MockRouter
) -> None:
    requests = await _recorded(gateway, sim, sim_api)
    checked = 0
    for request in requests:
        for required in _route_of(request).spec.required:
            pairs = [
                (k, v)
                for k, v in _pairs(request)
                if k != required and not k.startswith(required + "[")
            ]
            answer = sim.handle(_with_params(request, pairs))
            error = answer.json()["error"]
            assert (answer.status_code, error["code"], error["param"]) == (
                400,
                "parameter_missing",
                required,
            ), request.url
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({"amount": 49, "currency": "usd"}, "amount_too_small", "amount"),
        ({"amount": 29, "currency": "gbp"}, "amount_too_small", "amount"),
        ({"amount": 100_000_000, "currency": "usd"}, "amount_too_large", "amount"),
        ({"amount": 1_605, "currency": "kwd"}, "invalid_amount", "amount"),
        ({"amount": 1_000, "currency": "xyz"}, "parameter_invalid", "currency"),
        ({"amount": "10.50", "currency": "usd"}, "parameter_invalid", "amount"),
        ({"amount": 1_000, "currency": "usd", "application_fee_amount": 100}, None,
         "application_fee_amount"),
    ],
)  # fmt: skip
async def test_bad_amounts_and_currencies_raise_invalid_request_errors(
    client: stripe.StripeClient, params: dict[str, object], code: str | None, param: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await client.v1.payment_intents.create_async(params=params)  # type: ignore[arg-type]
    assert caught.value.http_status == 400
    assert (caught.value.code, caught.value.param) == (code, param)


async def test_a_fee_above_the_amount_and_an_inactive_destination_are_refused(
    client: stripe.StripeClient, gateway: StripeGateway, sim: StripeSimulator
) -> None:
    fresh = await gateway.create_express_account(
        country="US",
        email=None,
        business_name="New",
        product_description=None,
        metadata={},
        idempotency_key="fresh",
    )
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await client.v1.payment_intents.create_async(
            params={
                "amount": 1000,
                "currency": "usd",
                "transfer_data": {"destination": fresh.id},
            }
        )
    assert caught.value.code == "insufficient_capabilities_for_transfer"
    sim.complete_onboarding(fresh.id)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await client.v1.payment_intents.create_async(
            params={
                "amount": 1000,
                "currency": "usd",
                "application_fee_amount": 1001,
                "transfer_data": {"destination": fresh.id},
            }
        )
    assert caught.value.param == "application_fee_amount"


async def test_same_idempotency_key_and_body_replays_the_first_answer(
    client: stripe.StripeClient, sim: StripeSimulator, sim_api: respx.MockRouter
) -> None:
    params: stripe.params.PaymentIntentCreateParams = {"amount": 1000, "currency": "usd"}
    first = await client.v1.payment_intents.create_async(
        params=params, options={"idempotency_key": "k1"}
    )
    again = await client.v1.payment_intents.create_async(
        params=params, options={"idempotency_key": "k1"}
    )
    assert again.to_dict() == first.to_dict()
    assert len(sim.state.payment_intents) == 1
    replay = sim_api.calls[-1].response
    assert replay.headers["Idempotent-Replayed"] == "true"


async def test_same_idempotency_key_with_another_body_is_an_idempotency_error(
    client: stripe.StripeClient, sim: StripeSimulator
) -> None:
    await client.v1.payment_intents.create_async(
        params={"amount": 1000, "currency": "usd"}, options={"idempotency_key": "k1"}
    )
    with pytest.raises(stripe.IdempotencyError) as caught:
        await client.v1.payment_intents.create_async(
            params={"amount": 2000, "currency": "usd"}, options={"idempotency_key": "k1"}
        )
    assert caught.value.http_status == 400
    assert len(sim.state.payment_intents) == 1


async def test_a_validation_failure_is_not_saved_under_its_idempotency_key(
    client: stripe.StripeClient, sim: StripeSimulator
) -> None:
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.payment_intents.create_async(
            params={"amount": 10, "currency": "usd"}, options={"idempotency_key": "k1"}
        )
    # As on Stripe, a request that failed validation may be retried with the same key... and
    # the same parameters only (its result was an error that executed: not here).
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.payment_intents.create_async(
            params={"amount": 10, "currency": "usd"}, options={"idempotency_key": "k1"}
        )
    assert sim.state.payment_intents == {}


async def test_a_declined_card_answer_is_replayed_for_its_key(
    client: stripe.StripeClient, sim: StripeSimulator
) -> None:
    params: stripe.params.PaymentIntentCreateParams = {
        "amount": 1000,
        "currency": "usd",
        "confirm": True,
        "payment_method": "pm_card_chargeDeclined",
    }
    for _ in range(2):
        with pytest.raises(stripe.CardError) as caught:
            await client.v1.payment_intents.create_async(
                params=params, options={"idempotency_key": "decline"}
            )
        assert caught.value.code == "card_declined"
    assert len(sim.state.charges) == 1  # the retry replayed; no second attempt


async def test_stripe_account_scopes_objects_and_unknown_accounts_are_refused(
    client: stripe.StripeClient, gateway: StripeGateway, sim: StripeSimulator
) -> None:
    account = await onboarded_account(gateway, sim)
    direct = await gateway.create_payment_intent(
        amount=1000,
        currency="usd",
        metadata={},
        idempotency_key="d1",
        stripe_account=account.id,
        application_fee_amount=100,
    )
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await client.v1.payment_intents.retrieve_async(direct.id)
    assert (caught.value.http_status, caught.value.code) == (404, "resource_missing")
    found = await client.v1.payment_intents.retrieve_async(
        direct.id, options={"stripe_account": account.id}
    )
    assert found.id == direct.id
    with pytest.raises(stripe.PermissionError):
        await client.v1.payment_intents.retrieve_async(
            direct.id, options={"stripe_account": "acct_unknown"}
        )


async def test_requests_without_a_test_key_are_refused(sim: StripeSimulator) -> None:
    answer = sim.handle(httpx.Request("GET", "https://api.stripe.com/v1/balance"))
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "invalid_request_error"
    publishable = sim.handle(
        httpx.Request(
            "POST",
            "https://api.stripe.com/v1/payment_intents",
            headers={"Authorization": "Bearer pk_test_x"},
            content=b"amount=1000&currency=usd",
        )
    )
    assert publishable.status_code == 401


async def test_the_stripe_js_confirm_needs_the_client_secret(sim: StripeSimulator) -> None:
    def call(path: str, body: str, key: str = "sk_test_x") -> httpx.Response:
        return sim.handle(
            httpx.Request(
                "POST",
                f"https://api.stripe.com{path}",
                headers={"Authorization": f"Bearer {key}"},
                content=body.encode(),
            )
        )

    intent = call("/v1/payment_intents", "amount=1000&currency=usd").json()
    wrong = call(
        f"/v1/payment_intents/{intent['id']}/confirm",
        "payment_method=pm_card_visa&client_secret=nope",
        "pk_test_x",
    )
    assert wrong.status_code == 400
    right = call(
        f"/v1/payment_intents/{intent['id']}/confirm",
        f"payment_method=pm_card_visa&client_secret={intent['client_secret']}",
        "pk_test_x",
    )
    assert right.json()["status"] == "succeeded"
