"""The HTTP face of the simulator: route a Stripe API request to its operation, the way Stripe's
API behaves around it: API key, `Stripe-Account`, parameter validation, `expand`, list
pagination, idempotency keys (same key and parameters replay the first answer, other parameters
are refused) and Stripe's error JSON. Test helpers live under `/_simulator/` (no API key)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from marketplace_api.stripe_simulator import (
    accounts,
    charges,
    checkout,
    disputes,
    endpoints,
    params,
    payments,
    payouts,
    refunds,
    transfers,
)
from marketplace_api.stripe_simulator.context import RequestContext
from marketplace_api.stripe_simulator.engine import API_VERSION, DAY, SimEngine
from marketplace_api.stripe_simulator.errors import StripeAPIError
from marketplace_api.stripe_simulator.forms import Obj as ObjSpec
from marketplace_api.stripe_simulator.forms import decode_form
from marketplace_api.stripe_simulator.helpers import run_helper
from marketplace_api.stripe_simulator.state import Obj

Handler = Callable[..., Any]
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    spec: ObjSpec
    publishable: bool = False  # callable with a publishable key (what Stripe.js calls)


def _r(method: str, path: str, handler: Handler, spec: ObjSpec, publishable: bool = False) -> Route:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    return Route(method, re.compile(f"^{regex}$"), handler, spec, publishable)


P = params
ROUTES: list[Route] = [
    _r("POST", "/v1/accounts", accounts.create_account, P.ACCOUNT_CREATE),
    _r("GET", "/v1/accounts", accounts.list_accounts, P.ACCOUNT_LIST),
    _r("GET", "/v1/accounts/{id}", accounts.retrieve_account, P.RETRIEVE),
    _r("POST", "/v1/accounts/{id}", accounts.update_account, P.ACCOUNT_UPDATE),
    _r("POST", "/v1/accounts/{id}/login_links", accounts.create_login_link, P.LOGIN_LINK_CREATE),
    _r("POST", "/v1/account_links", accounts.create_account_link, P.ACCOUNT_LINK_CREATE),
    _r("GET", "/v1/balance", accounts.retrieve_balance, P.BALANCE_RETRIEVE),
    _r("POST", "/v1/payment_intents", payments.create_intent, P.PI_CREATE),
    _r("GET", "/v1/payment_intents", payments.list_intents, P.PI_LIST),
    _r("GET", "/v1/payment_intents/{id}", payments.retrieve_intent, P.PI_RETRIEVE, True),
    _r("POST", "/v1/payment_intents/{id}/confirm", payments.confirm_intent, P.PI_CONFIRM, True),
    _r("POST", "/v1/payment_intents/{id}/cancel", payments.cancel_intent, P.PI_CANCEL),
    _r("GET", "/v1/charges", charges.list_charges, P.CHARGE_LIST),
    _r("GET", "/v1/charges/{id}", charges.retrieve_charge, P.RETRIEVE),
    _r("POST", "/v1/checkout/sessions", checkout.create_session, P.SESSION_CREATE),
    _r("GET", "/v1/checkout/sessions", checkout.list_sessions, P.SESSION_LIST),
    _r("GET", "/v1/checkout/sessions/{id}", checkout.retrieve_session, P.RETRIEVE),
    _r("POST", "/v1/checkout/sessions/{id}/expire", checkout.expire_session, P.SESSION_EXPIRE),
    _r("GET", "/v1/checkout/sessions/{id}/line_items", checkout.list_line_items, P.PI_LIST),
    _r("POST", "/v1/transfers", transfers.create_transfer, P.TRANSFER_CREATE),
    _r("GET", "/v1/transfers", transfers.list_transfers, P.TRANSFER_LIST),
    _r("GET", "/v1/transfers/{id}", transfers.retrieve_transfer, P.RETRIEVE),
    _r("POST", "/v1/transfers/{id}/reversals", transfers.create_reversal, P.REVERSAL_CREATE),
    _r("GET", "/v1/transfers/{id}/reversals", transfers.list_reversals, P.PI_LIST),
    _r("GET", "/v1/transfers/{id}/reversals/{reversal}", transfers.retrieve_reversal, P.RETRIEVE),
    _r("POST", "/v1/refunds", refunds.create_refund, P.REFUND_CREATE),
    _r("GET", "/v1/refunds", refunds.list_refunds, P.REFUND_LIST),
    _r("GET", "/v1/refunds/{id}", refunds.retrieve_refund, P.RETRIEVE),
    _r("GET", "/v1/application_fees", refunds.list_fees, P.FEE_LIST),
    _r("GET", "/v1/application_fees/{id}", refunds.retrieve_fee, P.RETRIEVE),
    _r("POST", "/v1/application_fees/{id}/refunds", refunds.create_fee_refund, P.FEE_REFUND_CREATE),
    _r("GET", "/v1/application_fees/{id}/refunds", refunds.list_fee_refunds, P.PI_LIST),
    _r("GET", "/v1/disputes", disputes.list_disputes, P.DISPUTE_LIST),
    _r("GET", "/v1/disputes/{id}", disputes.retrieve_dispute, P.RETRIEVE),
    _r("GET", "/v1/payouts", payouts.list_payouts, P.PAYOUT_LIST),
    _r("GET", "/v1/payouts/{id}", payouts.retrieve_payout, P.RETRIEVE),
    _r("POST", "/v1/webhook_endpoints", endpoints.create_endpoint, P.WEBHOOK_CREATE),
    _r("GET", "/v1/webhook_endpoints", endpoints.list_endpoints, P.WEBHOOK_LIST),
    _r("GET", "/v1/webhook_endpoints/{id}", endpoints.retrieve_endpoint, P.RETRIEVE),
    _r("POST", "/v1/webhook_endpoints/{id}", endpoints.update_endpoint, P.WEBHOOK_UPDATE),
    _r("DELETE", "/v1/webhook_endpoints/{id}", endpoints.delete_endpoint, P.RETRIEVE),
    _r("GET", "/v1/events", endpoints.list_events, P.EVENT_LIST),
    _r("GET", "/v1/events/{id}", endpoints.retrieve_event, P.RETRIEVE),
]
IDEMPOTENCY_TTL = DAY


def _json(status: int, body: Any, ctx_headers: dict[str, str]) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(body, separators=(",", ":")).encode(),
        headers={"Content-Type": "application/json", **ctx_headers},
    )


def _api_key(request: httpx.Request) -> tuple[bool, bool]:
    """(a valid test key was sent, it is a publishable key)."""
    auth = request.headers.get("Authorization", "")
    key = auth.removeprefix("Bearer ").strip()
    if key.startswith(("sk_test_", "rk_test_")):
        return True, False
    if key.startswith("pk_test_"):
        return True, True
    return False, False


def _paginate(sim: SimEngine, items: list[Obj], p: Obj, url: str) -> Obj:
    newest_first = sorted(items, key=lambda o: o.get("created", 0), reverse=True)
    # Objects created in the same second keep Stripe's order: newest (last stored) first.
    order = {obj_id: i for i, obj_id in enumerate(sim.state.owner)}
    newest_first.sort(key=lambda o: (o.get("created", 0), order.get(o["id"], 0)), reverse=True)
    created = p.get("created")
    if isinstance(created, int):
        newest_first = [o for o in newest_first if o.get("created") == created]
    elif isinstance(created, dict):
        ops = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
        for op, bound in created.items():
            newest_first = [o for o in newest_first if ops[op](o.get("created", 0), bound)]
    ids = [o["id"] for o in newest_first]
    if "starting_after" in p and p["starting_after"] in ids:
        newest_first = newest_first[ids.index(p["starting_after"]) + 1 :]
    elif "ending_before" in p and p["ending_before"] in ids:
        newest_first = newest_first[: ids.index(p["ending_before"])]
    limit = min(int(p.get("limit", 10)), 100)
    return {
        "object": "list",
        "data": newest_first[:limit],
        "has_more": len(newest_first) > limit,
        "url": url,
    }


def handle_request(sim: SimEngine, request: httpx.Request) -> httpx.Response:
    request_id = sim.new_id("req", 14)
    headers = {
        "Request-Id": request_id,
        "Stripe-Version": request.headers.get("Stripe-Version", API_VERSION),
    }
    path = request.url.path
    for prefix in ("/simulator/api",):  # the simulator mounted on the app in development
        path = path.removeprefix(prefix)
    try:
        body = request.content.decode("utf-8")
        if request.method == "GET" or request.method == "DELETE":
            body = request.url.query.decode("ascii")
        raw = decode_form(body)
        if path.startswith("/_simulator/"):
            try:
                result = run_helper(sim, request.method, path, raw)
            finally:
                sim.changed()  # a helper that failed half-way may have changed state too
            return _json(200, result, headers)
        return _api(sim, request, path, raw, request_id, headers)
    except StripeAPIError as exc:
        return _json(exc.status, exc.body(), headers)
    except Exception:
        # A bug of the simulator: answered as Stripe answers its own failures (500 api_error),
        # logged with the traceback so it is not mistaken for the service's fault.
        logger.exception("stripe simulator failed on %s %s", request.method, path)
        failure = {"error": {"type": "api_error", "message": "The Stripe simulator failed."}}
        return _json(500, failure, headers)


def _api(
    sim: SimEngine,
    request: httpx.Request,
    path: str,
    raw: Obj,
    request_id: str,
    headers: dict[str, str],
) -> httpx.Response:
    valid, publishable = _api_key(request)
    if not valid:
        raise StripeAPIError(
            401,
            "Invalid API Key provided. Use a test key (sk_test_...) with the simulator.",
            type_="invalid_request_error",
        )
    route, path_params = None, {}
    for candidate in ROUTES:
        match = candidate.pattern.match(path)
        if match and candidate.method == request.method:
            route, path_params = candidate, match.groupdict()
            break
    if route is None:
        raise StripeAPIError(
            404,
            f"Unrecognized request URL ({request.method}: {path}).",
            type_="invalid_request_error",
        )
    if publishable and not route.publishable:
        raise StripeAPIError(
            401, "This API call cannot be made with a publishable API key.", saved=False
        )
    account = request.headers.get("Stripe-Account")
    if account is not None and (
        account not in sim.state.accounts or sim.private(account).get("deauthorized")
    ):
        raise StripeAPIError(
            403,
            f"The provided key does not have access to account '{account}' (or that account "
            "does not exist). Application access may have been revoked.",
            code="account_invalid",
        )
    key = request.headers.get("Idempotency-Key") if request.method != "GET" else None
    if key is not None:
        headers["Idempotency-Key"] = key
    ctx = RequestContext(account, publishable, key, request_id)
    p = route.spec.check(raw)
    fingerprint = hashlib.sha256(
        json.dumps([request.method, path, account, p], sort_keys=True).encode()
    ).hexdigest()
    scope_key = f"{account or 'platform'}:{key}"
    if key is not None:
        saved = sim.state.idempotency.get(scope_key)
        if saved is not None and saved["at"] + IDEMPOTENCY_TTL < sim.now():
            saved = None
        if saved is not None:
            if saved["fingerprint"] != fingerprint:
                raise StripeAPIError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters they "
                    f"were first used with. Try using a key other than '{key}' if you meant to "
                    "execute a different request.",
                    type_="idempotency_error",
                    saved=False,
                )
            return httpx.Response(
                saved["status"],
                content=saved["body"].encode(),
                headers={
                    "Content-Type": "application/json",
                    **headers,
                    "Idempotent-Replayed": "true",
                    "Original-Request": saved["request_id"],
                },
            )
    status, result = 200, None
    try:
        answer = route.handler(sim, ctx, p, **path_params)
        if isinstance(answer, list):
            answer = _paginate(sim, answer, p, path)
        result = sim.expand(answer, p.get("expand") or [], account) if p.get("expand") else answer
    except StripeAPIError as exc:
        if not exc.saved or key is None:
            if request.method != "GET":
                sim.changed()
            raise
        status, result = exc.status, exc.body()
    text = json.dumps(result, separators=(",", ":"))
    if key is not None:
        sim.state.idempotency[scope_key] = {
            "fingerprint": fingerprint,
            "status": status,
            "body": text,
            "request_id": request_id,
            "at": sim.now(),
        }
    if request.method != "GET":
        sim.changed()
    return httpx.Response(
        status, content=text.encode(), headers={"Content-Type": "application/json", **headers}
    )
