"""The parameters each simulated endpoint accepts: the subset of Stripe's API this service (and a
test driving it) uses, typed as Stripe types them. Anything else is `parameter_unknown`."""

from __future__ import annotations

from marketplace_api.stripe_simulator.forms import (
    Bool,
    Enum,
    Int,
    ListOf,
    Metadata,
    Obj,
    OneOf,
    Str,
    params,
)

S = Str()
I0 = Int(minimum=0)
B = Bool()
META = Metadata()
RANGE = Obj({"gt": I0, "gte": I0, "lt": I0, "lte": I0})
CREATED = OneOf((I0, RANGE))
LIST = {"limit": Int(minimum=1), "starting_after": S, "ending_before": S, "created": CREATED}
RETRIEVE = params({})

SCHEDULE = Obj(
    {
        "interval": Enum(("daily", "weekly", "monthly", "manual")),
        "delay_days": OneOf((Enum(("minimum",)), I0)),
        "weekly_anchor": Enum(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        ),
        "monthly_anchor": Int(minimum=1),
    }
)
ACCOUNT_SETTINGS = Obj(
    {
        "payouts": Obj(
            {"schedule": SCHEDULE, "statement_descriptor": S, "debit_negative_balances": B}
        ),
        "payments": Obj({"statement_descriptor": S}),
    }
)
BUSINESS_PROFILE = Obj(
    {
        "name": S,
        "product_description": Str(max_length=500),
        "url": S,
        "mcc": S,
        "support_email": S,
    }
)
CAPABILITY = Obj({"requested": B})

ACCOUNT_CREATE = params(
    {
        "type": Enum(("express", "standard", "custom")),
        "country": Str(max_length=2),
        "email": S,
        "controller": Obj(
            {
                "stripe_dashboard": Obj({"type": Enum(("express", "full", "none"))}),
                "fees": Obj({"payer": Enum(("application", "account"))}),
                "losses": Obj({"payments": Enum(("application", "stripe"))}),
                "requirement_collection": Enum(("application", "stripe")),
            }
        ),
        "capabilities": Obj({"card_payments": CAPABILITY, "transfers": CAPABILITY}),
        "business_type": Enum(("individual", "company", "non_profit", "government_entity")),
        "business_profile": BUSINESS_PROFILE,
        "default_currency": S,
        "metadata": META,
        "settings": ACCOUNT_SETTINGS,
    }
)
ACCOUNT_UPDATE = params(
    {
        "email": S,
        "business_profile": BUSINESS_PROFILE,
        "metadata": META,
        "settings": ACCOUNT_SETTINGS,
        "default_currency": S,
    }
)
ACCOUNT_LIST = params(LIST)
ACCOUNT_LINK_CREATE = params(
    {
        "account": S,
        "type": Enum(("account_onboarding", "account_update")),
        "refresh_url": S,
        "return_url": S,
        "collect": Enum(("currently_due", "eventually_due")),
        "collection_options": Obj(
            {
                "fields": Enum(("currently_due", "eventually_due")),
                "future_requirements": Enum(("include", "omit")),
            }
        ),
    },
    "account",
    "type",
)
LOGIN_LINK_CREATE = params({})
BALANCE_RETRIEVE = params({})

TRANSFER_DATA = Obj({"destination": S, "amount": Int(minimum=1)}, ("destination",))
PI_CREATE = params(
    {
        "amount": Int(),
        "currency": S,
        "automatic_payment_methods": Obj(
            {"enabled": B, "allow_redirects": Enum(("always", "never"))}, ("enabled",)
        ),
        "payment_method_types": ListOf(S),
        "payment_method": S,
        "confirm": B,
        "capture_method": Enum(("automatic", "automatic_async")),
        "metadata": META,
        "application_fee_amount": Int(),
        "transfer_data": TRANSFER_DATA,
        "on_behalf_of": S,
        "transfer_group": S,
        "receipt_email": S,
        "description": Str(max_length=1000),
        "statement_descriptor": Str(max_length=22),
        "statement_descriptor_suffix": Str(max_length=22),
        "return_url": S,
    },
    "amount",
    "currency",
)
PI_RETRIEVE = params({"client_secret": S})
PI_CONFIRM = params({"payment_method": S, "return_url": S, "receipt_email": S, "client_secret": S})
PI_CANCEL = params(
    {"cancellation_reason": Enum(("duplicate", "fraudulent", "requested_by_customer", "abandoned"))}
)
PI_LIST = params(LIST)
CHARGE_LIST = params({**LIST, "payment_intent": S, "transfer_group": S})

LINE_ITEM = Obj(
    {
        "quantity": Int(minimum=1),
        "price": S,
        "price_data": Obj(
            {
                "currency": S,
                "unit_amount": Int(minimum=0),
                "product_data": Obj(
                    {"name": S, "description": S, "metadata": META, "images": ListOf(S)},
                    ("name",),
                ),
            },
            ("currency",),
        ),
    },
    ("quantity",),
)
SESSION_CREATE = params(
    {
        "mode": Enum(("payment",)),
        "line_items": ListOf(LINE_ITEM),
        "payment_intent_data": Obj(
            {
                "metadata": META,
                "application_fee_amount": Int(),
                "transfer_data": TRANSFER_DATA,
                "on_behalf_of": S,
                "transfer_group": S,
                "statement_descriptor": Str(max_length=22),
                "statement_descriptor_suffix": Str(max_length=22),
                "description": S,
                "receipt_email": S,
                "capture_method": Enum(("automatic", "automatic_async")),
            }
        ),
        "client_reference_id": Str(max_length=200),
        "metadata": META,
        "success_url": S,
        "cancel_url": S,
        "expires_at": I0,
        "customer_email": S,
        "payment_method_types": ListOf(S),
        "locale": S,
    },
    "mode",
)
SESSION_LIST = params({**LIST, "payment_intent": S, "status": S})
SESSION_EXPIRE = params({})

TRANSFER_CREATE = params(
    {
        "amount": Int(),
        "currency": S,
        "destination": S,
        "source_transaction": S,
        "transfer_group": S,
        "metadata": META,
        "description": S,
    },
    "currency",
    "destination",
)
TRANSFER_LIST = params({**LIST, "destination": S, "transfer_group": S})
REVERSAL_CREATE = params(
    {"amount": Int(), "metadata": META, "description": S, "refund_application_fee": B}
)
REFUND_CREATE = params(
    {
        "payment_intent": S,
        "charge": S,
        "amount": Int(),
        "reason": Enum(("duplicate", "fraudulent", "requested_by_customer")),
        "metadata": META,
        "reverse_transfer": B,
        "refund_application_fee": B,
    }
)
REFUND_LIST = params({**LIST, "payment_intent": S, "charge": S})
FEE_LIST = params({**LIST, "charge": S})
FEE_REFUND_CREATE = params({"amount": Int(), "metadata": META})
DISPUTE_LIST = params({**LIST, "payment_intent": S, "charge": S})
PAYOUT_LIST = params({**LIST, "status": S})
EVENT_LIST = params({**LIST, "type": S, "types": ListOf(S)})

WEBHOOK_CREATE = params(
    {
        "url": S,
        "enabled_events": ListOf(S),
        "connect": B,
        "api_version": S,
        "description": S,
        "metadata": META,
    },
    "url",
    "enabled_events",
)
WEBHOOK_UPDATE = params(
    {
        "url": S,
        "enabled_events": ListOf(S),
        "disabled": B,
        "description": S,
        "metadata": META,
    }
)
WEBHOOK_LIST = params({"limit": Int(minimum=1), "starting_after": S, "ending_before": S})
