"""`marketplace-api demo`: the marketplace's story, told through the public HTTP API of a running
server on the Stripe simulator, printing each step with its money.

Where a person would click on a Stripe page (onboarding, the Checkout page, the card form of the
Payment Element), the demo does what that page does: it posts the simulator's hosted-page form,
or confirms the PaymentIntent with the publishable key and client secret as Stripe.js would. It
reads Stripe's side through the simulator's API (`/simulator/api/v1/...`, any test key) to show
that what the service recorded is what "Stripe" did. No admin is needed: every step uses the
vendor and buyer routes. Webhook events arrive asynchronously, so the demo waits for the states it
needs with a bounded poll. Exit status 1 if any invariant fails.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from marketplace_api.notifications.formatting import major_units

PASSWORD = "demo-password-123"  # noqa: S105 - the demo's own throwaway users
SIM_KEY = "sk_test_demo"  # the simulator answers any test key
SIM_PUBLISHABLE = "pk_test_demo"


class DemoFailed(Exception):
    pass


def money(amount: int, currency: str = "usd") -> str:
    """`4800` → `48.00 USD`, exactly, with the currency's own number of decimals."""
    return f"{major_units(amount, currency):,} {currency.upper()}"


@dataclass
class User:
    email: str
    token: str
    account: str = ""  # a vendor's Stripe account

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Demo:
    http: httpx.AsyncClient  # base_url: the API
    out: Callable[[str], None] = print
    timeout: float = 60.0
    failures: list[str] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    # --- plumbing -------------------------------------------------------------------------------

    async def call(
        self, method: str, path: str, user: User | None = None, expect: int = 200, **kw: Any
    ) -> Any:
        headers = {**(user.headers if user else {}), **kw.pop("headers", {})}
        answer = await self.http.request(method, path, headers=headers, **kw)
        # Registration is rate limited per client address: a second demo run within a minute
        # waits as any client should (Retry-After), rather than failing.
        deadline = time.monotonic() + self.timeout
        while answer.status_code == 429 and time.monotonic() < deadline:
            pause = float(answer.headers.get("Retry-After", "1"))
            self.out(f"    (rate limited: waiting {pause:.0f}s as Retry-After asks)")
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            answer = await self.http.request(method, path, headers=headers, **kw)
        if answer.status_code != expect:
            raise DemoFailed(f"{method} {path} answered {answer.status_code}: {answer.text[:400]}")
        return answer.json() if answer.content and expect != 303 else answer

    async def stripe(self, method: str, path: str, **kw: Any) -> Any:
        """Stripe's side, read from (or done on) the simulator the server runs on."""
        headers = {"Authorization": f"Bearer {SIM_KEY}", **kw.pop("headers", {})}
        return await self.call(method, f"/simulator/api{path}", headers=headers, **kw)

    async def wait_for(self, what: str, probe: Callable[[], Awaitable[bool]]) -> None:
        deadline = time.monotonic() + self.timeout
        while not await probe():
            if time.monotonic() > deadline:
                raise DemoFailed(f"timed out after {self.timeout:.0f}s waiting for {what}")
            await asyncio.sleep(0.2)

    def check(self, ok: bool, label: str) -> None:
        self.out(f"    [{'ok' if ok else 'FAILED'}] {label}")
        if not ok:
            self.failures.append(label)

    def step(self, title: str) -> None:
        self.out(f"\n== {title}")

    async def user(self, role: str, name: str) -> User:
        email = f"{name}-{self.run_id}@demo.example"
        body = {"email": email, "password": PASSWORD, "role": role, "full_name": name}
        await self.call("POST", "/v1/auth/register", json=body, expect=201)
        token = await self.call(
            "POST", "/v1/auth/token", data={"username": email, "password": PASSWORD}
        )
        return User(email, token["access_token"])

    # --- the story ----------------------------------------------------------------------------

    async def run(self) -> bool:
        await self.call("GET", "/healthz")
        probe = await self.http.get("/simulator/api/_simulator/state")
        if probe.status_code != 200:
            raise DemoFailed(
                "this API does not run on the Stripe simulator: start it in development without "
                "STRIPE_SECRET_KEY (`make run`)"
            )
        vendors = [
            await self.onboard("ada", "Ada's Ceramics"),
            await self.onboard("bo", "Bo Prints"),
        ]
        self.step("Vendors list goods")
        mug = await self.listing(vendors[0], "Ceramic mug", 2_400)
        poster = await self.listing(vendors[1], "Risograph poster", 3_500)

        buyer = await self.user("buyer", "cleo")
        payment, orders = await self.checkout_cart(buyer, mug, poster)
        await self.ship_and_deliver(buyer, vendors, orders)
        await self.refund_one_item(vendors[0], orders[mug["vendor_id"]], mug)
        disputed = await self.dispute(buyer, vendors[1], poster)
        await self.statements(vendors)
        await self.invariants(buyer, [payment["id"], disputed])
        self.out("")
        if self.failures:
            self.out(f"FAILED: {len(self.failures)} check(s): " + "; ".join(self.failures))
            return False
        self.out("All checks passed.")
        return True

    async def onboard(self, name: str, shop: str) -> User:
        self.step(f"{shop} registers and onboards with Stripe Express")
        vendor = await self.user("vendor", name)
        profile = {"display_name": shop, "country": "US", "default_currency": "usd"}
        await self.call("PUT", "/v1/vendor/profile", vendor, json=profile)
        setup = await self.call("POST", "/v1/vendor/payments/setup", vendor)
        vendor.account = setup["stripe_account_id"]
        self.out(f"    account {vendor.account} ({setup['status']})")
        self.out(f"    onboarding page: {setup['onboarding_url']}")
        # The vendor presses "finish" on the hosted onboarding page and is sent back to the SPA,
        # which asks the API to refresh the account.
        back = await self.call("POST", setup["onboarding_url"], expect=303)
        self.out(f"    back at {back.headers['location']}")
        await self.call("POST", "/v1/vendor/payments/refresh-status", vendor)

        async def active() -> bool:
            config = await self.call("GET", "/v1/vendor/payments/config", vendor)
            return bool(config["status"] == "active" and config["can_accept_payments"])

        await self.wait_for(f"{shop} to be active", active)
        self.out("    status: active, charges and payouts enabled")
        return vendor

    async def listing(self, vendor: User, title: str, price: int) -> dict[str, Any]:
        body = {"title": title, "price_amount": price, "currency": "usd", "stock_quantity": 10,
                "status": "active"}  # fmt: skip
        created: dict[str, Any] = await self.call(
            "POST", "/v1/vendor/listings", vendor, json=body, expect=201
        )
        self.out(f"    {title}: {money(price)}")
        return created

    async def checkout_cart(
        self, buyer: User, mug: dict[str, Any], poster: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        self.step("A buyer checks out a two-vendor cart (2 mugs + 1 poster) and pays")
        cart = {"items": [{"listing_id": mug["id"], "quantity": 2},
                          {"listing_id": poster["id"], "quantity": 1}]}  # fmt: skip
        checkout = await self.call("POST", "/v1/buyer/orders", buyer, json=cart, expect=201)
        self.out(
            f"    payment {checkout['payment_id']}: {money(checkout['amount'])}, platform fee "
            f"{money(checkout['platform_fee'])}, charge type {checkout['charge_type']}"
        )
        self.check(
            checkout["charge_type"] == "separate", "a multi-vendor cart is a separate charge"
        )
        orders = {o["vendor_id"]: o for o in checkout["orders"]}
        for order in checkout["orders"]:
            self.out(
                f"    order {order['id'][:8]}: {money(order['amount'])} = vendor "
                f"{money(order['vendor_amount'])} + fee {money(order['platform_fee'])}"
            )
        # What Stripe.js does when the buyer submits the Payment Element with the test card.
        secret = checkout["client_secret"]
        intent_id = secret.split("_secret_")[0]
        intent = await self.call(
            "POST",
            f"/simulator/api/v1/payment_intents/{intent_id}/confirm",
            headers={"Authorization": f"Bearer {SIM_PUBLISHABLE}"},
            data={"payment_method": "pm_card_visa", "client_secret": secret},
        )
        self.out(f"    Stripe: {intent_id} {intent['status']}, charge {intent['latest_charge']}")
        payment_id = checkout["payment_id"]

        async def paid() -> bool:
            payment = await self.call("GET", f"/v1/buyer/payments/{payment_id}", buyer)
            return bool(payment["status"] == "succeeded")

        await self.wait_for("the payment to succeed (webhook)", paid)
        self.out("    payment succeeded (payment_intent.succeeded received)")
        payment = await self.call("GET", f"/v1/buyer/payments/{payment_id}", buyer)
        self.check(payment["amount"] == intent["amount"], "Stripe charged the payment's amount")
        return payment, orders

    async def ship_and_deliver(
        self, buyer: User, vendors: list[User], orders: dict[str, dict[str, Any]]
    ) -> None:
        self.step("Vendors ship; the buyer confirms delivery; held funds are released")
        for vendor in vendors:
            page = await self.call("GET", "/v1/vendor/orders", vendor)
            for order in page["items"]:
                if order["fulfilment_status"] == "unfulfilled" and order["status"] == "paid":
                    ship = {"carrier": "UPS", "tracking_number": f"1Z{order['id'][:8]}"}
                    await self.call(
                        "POST", f"/v1/vendor/orders/{order['id']}/ship", vendor, json=ship
                    )
                    self.out(f"    order {order['id'][:8]} shipped")
        for order in orders.values():
            done = await self.call(
                "POST", f"/v1/buyer/orders/{order['id']}/confirm-delivery", buyer
            )
            transfer = done["transfer"] or {}
            stripe_id = transfer.get("stripe_transfer_id")
            self.out(
                f"    order {order['id'][:8]} delivered; transfer {stripe_id}: "
                f"{money(int(transfer.get('amount') or 0))} to {transfer.get('destination')}"
            )
            self.check(
                transfer.get("amount") == order["vendor_amount"], "released the vendor share"
            )
            # A release that never reached Stripe must fail the demo, not skip its checks.
            self.check(bool(stripe_id), "the transfer was made at Stripe")
            if stripe_id:
                on_stripe = await self.stripe("GET", f"/v1/transfers/{stripe_id}")
                charge = on_stripe["source_transaction"]
                self.out(f"      Stripe: {money(on_stripe['amount'])}, source_transaction {charge}")
                self.check(
                    on_stripe["amount"] == order["vendor_amount"] and bool(charge),
                    "Stripe's transfer matches, funded by the charge (source_transaction)",
                )

    async def refund_one_item(
        self, vendor: User, order: dict[str, Any], mug: dict[str, Any]
    ) -> None:
        self.step("The mug vendor refunds one of the two mugs")
        body = {"amount": mug["price_amount"], "reason": "requested_by_customer"}
        refund = await self.call(
            "POST", f"/v1/vendor/orders/{order['id']}/refunds", vendor, json=body, expect=201
        )
        self.out(
            f"    refund {refund['stripe_refund_id']}: {money(refund['amount'])} = vendor share "
            f"{money(refund['vendor_share'])} + fee share {money(refund['fee_share'])} "
            f"({refund['status']})"
        )
        self.check(
            refund["vendor_share"] + refund["fee_share"] == refund["amount"],
            "refund split: vendor_share + fee_share == amount",
        )
        seen = await self.call("GET", f"/v1/vendor/orders/{order['id']}", vendor)
        transfer = seen["transfer"] or {}
        self.check(bool(transfer.get("stripe_transfer_id")), "the refunded order's transfer exists")
        if transfer.get("stripe_transfer_id"):
            on_stripe = await self.stripe("GET", f"/v1/transfers/{transfer['stripe_transfer_id']}")
            self.out(
                f"    Stripe: transfer reversed by {money(on_stripe['amount_reversed'])} "
                "(the vendor's share comes back to the platform)"
            )
            self.check(
                on_stripe["amount_reversed"] == refund["vendor_share"],
                "the transfer reversal equals the refund's vendor share",
            )

    async def dispute(self, buyer: User, vendor: User, poster: dict[str, Any]) -> str:
        self.step("Another buyer order, paid on the Checkout page with a card that gets disputed")
        cart = {"items": [{"listing_id": poster["id"], "quantity": 1}]}
        checkout = await self.call("POST", "/v1/buyer/orders", buyer, json=cart, expect=201)
        order = checkout["orders"][0]
        session = await self.call("POST", f"/v1/buyer/orders/{order['id']}/checkout-session", buyer)
        self.out(f"    Checkout page: {session['url']}")
        back = await self.call(
            "POST", session["url"], data={"payment_method": "pm_card_createDispute"}, expect=303
        )
        self.out(f"    paid, back at {back.headers['location']}")
        on_stripe = await self.stripe("GET", f"/v1/checkout/sessions/{session['session_id']}")
        disputes = await self.stripe(
            "GET", "/v1/disputes", params={"payment_intent": on_stripe["payment_intent"]}
        )
        dispute = disputes["data"][0]
        self.out(
            f"    Stripe: dispute {dispute['id']} for {money(dispute['amount'])} "
            f"({dispute['reason']})"
        )

        async def status_is(wanted: str) -> bool:
            seen = await self.call("GET", f"/v1/buyer/orders/{order['id']}", buyer)
            return bool(seen["status"] == wanted)

        await self.wait_for("the order to be disputed (webhook)", lambda: status_is("disputed"))
        self.out("    order disputed: its release is blocked")
        await self.call(
            "POST",
            f"/simulator/api/_simulator/disputes/{dispute['id']}/close",
            data={"outcome": "lost"},
        )
        await self.wait_for("the lost dispute to refund the order", lambda: status_is("refunded"))
        self.out("    dispute lost: the order ends refunded")
        return str(checkout["payment_id"])

    async def statements(self, vendors: list[User]) -> None:
        """Each vendor's ledger, then the figures to check by eye: what the ledger says reached
        the vendor (transfers less reversals) equals the vendor's balance on "Stripe" (nothing
        has been paid out yet)."""
        self.step("Ledger statements (signs follow the buyer's money: + in, - out)")
        summary = []
        for vendor in vendors:
            page = await self.call("GET", "/v1/vendor/payments", vendor, params={"limit": 100})
            by_kind: dict[str, int] = {}
            name = vendor.email.split("-")[0]
            for movement in reversed(page["items"]):
                by_kind[movement["kind"]] = by_kind.get(movement["kind"], 0) + movement["amount"]
                self.out(
                    f"    {name:>4} {movement['kind']:<20} {money(movement['amount']):>12}  "
                    f"{movement['stripe_id']}"
                )
            balance = await self.stripe(
                "GET", "/v1/balance", headers={"Stripe-Account": vendor.account}
            )
            on_stripe = sum(b["amount"] for b in balance["available"] + balance["pending"])
            summary.append((name, by_kind, on_stripe))
        self.step("Figures to check by eye")
        self.out(
            f"    {'vendor':<6} {'charged':>12} {'refunded':>12} {'platform':>12} "
            f"{'to vendor':>12} {'on Stripe':>12}"
        )
        for name, k, on_stripe in summary:
            to_vendor = k.get("transfer", 0) + k.get("transfer_reversal", 0)
            platform = k.get("platform_fee", 0) + k.get("refund_fee_share", 0)
            self.out(
                f"    {name:<6} {money(k.get('charge', 0)):>12} {money(k.get('refund', 0)):>12} "
                f"{money(platform):>12} {money(to_vendor):>12} {money(on_stripe):>12}"
            )
            self.check(
                to_vendor == on_stripe and on_stripe > 0,
                f"{name}: the ledger's transfers less reversals equal its Stripe balance (> 0)",
            )

    async def invariants(self, buyer: User, payment_ids: list[str]) -> None:
        self.step("Per-payment invariants")
        page = await self.call("GET", "/v1/buyer/orders", buyer, params={"limit": 100})
        for payment_id in payment_ids:
            payment = await self.call("GET", f"/v1/buyer/payments/{payment_id}", buyer)
            orders = [o for o in page["items"] if o["payment_id"] == payment_id]
            for order in orders:
                self.check(
                    order["vendor_amount"] + order["platform_fee"] == order["amount"],
                    f"order {order['id'][:8]}: vendor_amount {order['vendor_amount']} + "
                    f"platform_fee {order['platform_fee']} == amount {order['amount']}",
                )
            self.check(
                sum(o["amount"] for o in orders) == payment["amount"]
                and sum(o["platform_fee"] for o in orders) == payment["platform_fee"],
                f"payment {payment_id[:8]}: orders add up to {money(payment['amount'])} "
                f"(fee {money(payment['platform_fee'])}), "
                f"refunded {money(payment['amount_refunded'])}",
            )


async def run_demo(api: str, *, wait_seconds: float = 60.0) -> bool:
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        demo = Demo(http, timeout=wait_seconds)
        try:
            return await demo.run()
        except DemoFailed as exc:
            print(f"\nDEMO FAILED: {exc}")
            return False
        except httpx.HTTPError as exc:
            print(f"\nDEMO FAILED: cannot reach the API at {api} ({exc!r}); is `make run` running?")
            return False
