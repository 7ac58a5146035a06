"""Every call the service's gateway makes, driven against the simulator in one story: the
request shapes the stripe SDK really sends (recorded by respx) for the validation tests."""

from __future__ import annotations

import time

from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.integrations.stripe.objects import Account
from marketplace_api.stripe_simulator import StripeSimulator


async def onboarded_account(
    gateway: StripeGateway, sim: StripeSimulator, key: str = "vendor:1:account"
) -> Account:
    account = await gateway.create_express_account(
        country="US",
        email="vendor@example.com",
        business_name="Vendor",
        product_description="Hand-made things",
        metadata={"vendor_id": key},
        idempotency_key=key,
    )
    sim.complete_onboarding(account.id)
    return account


async def every_gateway_call(gateway: StripeGateway, sim: StripeSimulator) -> set[str]:
    """Call each public gateway method at least once; answers the names called."""
    called: set[str] = set()
    account = await gateway.create_express_account(
        country="US",
        email="v@example.com",
        business_name="Vendor",
        product_description="Things",
        metadata={"vendor_id": "v1", "user_id": "u1"},
        idempotency_key="vendor:v1:account",
    )
    called.add("create_express_account")
    acct = account.id
    await gateway.create_account_link(
        acct, refresh_url="https://shop/r", return_url="https://shop/ret", idempotency_key="l1"
    )
    called.add("create_account_link")
    sim.complete_onboarding(acct)
    assert (await gateway.retrieve_account(acct)).charges_enabled is True
    called.add("retrieve_account")
    await gateway.create_login_link(acct, idempotency_key="ll1")
    called.add("create_login_link")
    await gateway.update_payout_schedule(
        acct,
        interval="weekly",
        delay_days="minimum",
        weekly_anchor="friday",
        monthly_anchor=None,
        idempotency_key="ps1",
    )
    await gateway.update_payout_schedule(
        acct,
        interval="monthly",
        delay_days=5,
        weekly_anchor=None,
        monthly_anchor=15,
        idempotency_key="ps2",
    )
    called.add("update_payout_schedule")

    # destination (with on_behalf_of), then refund with reversal and fee refund
    dest = await gateway.create_payment_intent(
        amount=10_000,
        currency="usd",
        metadata={"payment_id": "p1"},
        idempotency_key="payment:p1:create",
        application_fee_amount=1_000,
        transfer_destination=acct,
        on_behalf_of=acct,
        receipt_email="buyer@example.com",
        statement_descriptor_suffix="ORDER 1",
    )
    called.add("create_payment_intent")
    sim.confirm_payment_intent(dest.id, "pm_card_visa")
    intent = await gateway.retrieve_payment_intent(dest.id)
    called.add("retrieve_payment_intent")
    assert intent.expanded_charge is not None
    assert intent.expanded_charge.transfer
    await gateway.create_refund(
        payment_intent=dest.id,
        amount=2_500,
        reason="requested_by_customer",
        metadata={"refund_id": "r1"},
        idempotency_key="refund:r1",
        reverse_transfer=True,
        refund_application_fee=True,
    )
    called.add("create_refund")

    # direct, cancelled; then one paid and refunded on the connected account
    direct = await gateway.create_payment_intent(
        amount=5_000,
        currency="usd",
        metadata={"payment_id": "p2"},
        idempotency_key="payment:p2:create",
        stripe_account=acct,
        application_fee_amount=500,
    )
    await gateway.retrieve_payment_intent(direct.id, stripe_account=acct)
    await gateway.cancel_payment_intent(
        direct.id, idempotency_key="payment:p2:cancel", stripe_account=acct
    )
    called.add("cancel_payment_intent")
    paid = await gateway.create_payment_intent(
        amount=5_000,
        currency="usd",
        metadata={"payment_id": "p3"},
        idempotency_key="payment:p3:create",
        stripe_account=acct,
        application_fee_amount=500,
    )
    sim.confirm_payment_intent(paid.id)
    await gateway.create_refund(
        payment_intent=paid.id,
        amount=5_000,
        reason="duplicate",
        metadata={"refund_id": "r2"},
        idempotency_key="refund:r2",
        refund_application_fee=True,
        stripe_account=acct,
    )

    # separate charges and transfers, through a Checkout Session
    expires = int(time.time()) + 3600
    session = await gateway.create_checkout_session(
        currency="usd",
        line_items=[("Mug", 1_500, 2), ("Plate", 2_000, 1)],
        client_reference_id="p4",
        metadata={"payment_id": "p4"},
        success_url="https://shop/ok?session={CHECKOUT_SESSION_ID}",
        cancel_url="https://shop/cancel",
        expires_at=expires,
        idempotency_key="payment:p4:checkout",
        customer_email="buyer@example.com",
        transfer_group="payment:p4",
        statement_descriptor_suffix="ORDER 4",
    )
    called.add("create_checkout_session")
    paid_session = sim.pay_checkout_session(session.id, "pm_card_visa")
    charge = sim.state.payment_intents[paid_session["payment_intent"]]["latest_charge"]
    transfer = await gateway.create_transfer(
        amount=4_000,
        currency="usd",
        destination=acct,
        source_transaction=charge,
        transfer_group="payment:p4",
        metadata={"transfer_id": "t1"},
        idempotency_key="transfer:t1",
    )
    called.add("create_transfer")
    await gateway.create_transfer_reversal(
        transfer.id, amount=1_000, metadata={"reversal_id": "rv1"}, idempotency_key="rv:1"
    )
    called.add("create_transfer_reversal")
    other = await gateway.create_checkout_session(
        currency="usd",
        line_items=[("Bowl", 900, 1)],
        client_reference_id="p5",
        metadata={"payment_id": "p5"},
        success_url="https://shop/ok",
        cancel_url="https://shop/cancel",
        expires_at=expires,
        idempotency_key="payment:p5:checkout",
        application_fee_amount=90,
        transfer_destination=acct,
    )
    await gateway.expire_checkout_session(other.id, idempotency_key="payment:p5:expire")
    called.add("expire_checkout_session")
    await gateway.retrieve_balance(acct)
    called.add("retrieve_balance")

    # The reads of `reconcile`: retrieve or list each kind of object, on the account it lives on.
    [refund] = await gateway.list_refunds(payment_intent=dest.id)
    assert (await gateway.retrieve_refund(refund.id)).metadata == {"refund_id": "r1"}
    assert len(await gateway.list_refunds(payment_intent=paid.id, stripe_account=acct)) == 1
    assert (await gateway.list_transfers(transfer_group="payment:p4"))[0].id == transfer.id
    assert (await gateway.retrieve_transfer(transfer.id)).amount_reversed == 1_000
    assert len(await gateway.list_transfer_reversals(transfer.id)) == 1
    assert (await gateway.retrieve_checkout_session(session.id)).status == "complete"
    dispute = sim.open_dispute(charge)
    assert (await gateway.retrieve_dispute(dispute["id"])).status == "needs_response"
    since = int(time.time()) - 3600
    assert [d.id for d in await gateway.list_disputes(created_since=since)] == [dispute["id"]]
    assert await gateway.list_disputes(created_since=since, stripe_account=acct) == []
    assert await gateway.list_payouts(stripe_account=acct, created_since=since) == []
    called |= {
        "list_refunds",
        "retrieve_refund",
        "list_transfers",
        "retrieve_transfer",
        "list_transfer_reversals",
        "retrieve_checkout_session",
        "retrieve_dispute",
        "list_disputes",
        "list_payouts",
    }

    created = await gateway.create_webhook_endpoint(
        url="https://api.shop/webhooks/stripe",
        enabled_events=["payment_intent.succeeded", "charge.refunded"],
        connect=False,
        description="platform",
        metadata={"marketplace_endpoint": "platform"},
    )
    called.add("create_webhook_endpoint")
    assert created.secret
    assert created.secret.startswith("whsec_")
    await gateway.update_webhook_endpoint(
        created.id,
        enabled_events=["payment_intent.succeeded"],
        description="platform",
        metadata={"marketplace_endpoint": "platform"},
    )
    called.add("update_webhook_endpoint")
    listed = await gateway.list_webhook_endpoints()
    called.add("list_webhook_endpoints")
    assert [e.id for e in listed] == [created.id]
    assert listed[0].secret is None  # shown once, in the create answer only
    await gateway.delete_webhook_endpoint(created.id)
    called.add("delete_webhook_endpoint")
    return called
