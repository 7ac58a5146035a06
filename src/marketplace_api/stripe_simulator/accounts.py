"""Connected accounts (Express), account links, login links, balance, and the onboarding a
person completes on the hosted page."""

from __future__ import annotations

import copy
from typing import Any

from marketplace_api.stripe_simulator.context import RequestContext
from marketplace_api.stripe_simulator.engine import SimEngine
from marketplace_api.stripe_simulator.errors import StripeAPIError, invalid, no_such
from marketplace_api.stripe_simulator.money import check_currency
from marketplace_api.stripe_simulator.state import Obj

DEFAULT_CURRENCY = {
    "US": "usd", "GB": "gbp", "CA": "cad", "AU": "aud", "NZ": "nzd", "JP": "jpy", "CH": "chf",
    "SE": "sek", "NO": "nok", "DK": "dkk", "PL": "pln", "CZ": "czk", "MX": "mxn", "BR": "brl",
    "SG": "sgd", "HK": "hkd", "IN": "inr",
}  # fmt: skip
EURO = {"AT", "BE", "CY", "DE", "EE", "ES", "FI", "FR", "GR", "HR", "IE", "IT", "LT", "LU",
        "LV", "MT", "NL", "PT", "SI", "SK"}  # fmt: skip
MINIMUM_DELAY = {"US": 2, "CA": 2, "GB": 3, "AU": 2, "JP": 4}
# What Stripe asks an Express individual for before charges and payouts are enabled.
ONBOARDING_REQUIREMENTS = [
    "business_profile.mcc",
    "business_profile.url",
    "business_type",
    "external_account",
    "individual.dob.day",
    "individual.email",
    "individual.first_name",
    "individual.last_name",
    "tos_acceptance.date",
    "tos_acceptance.ip",
]
LINK_TTL = 300


def _requirements(due: list[str], disabled_reason: str | None) -> Obj:
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": list(due),
        "disabled_reason": disabled_reason,
        "errors": [],
        "eventually_due": list(due),
        "past_due": list(due),
        "pending_verification": [],
    }


def _schedule(country: str, requested: Obj | None, current: Obj | None) -> Obj:
    schedule = dict(current or {"interval": "daily", "delay_days": MINIMUM_DELAY.get(country, 2)})
    if requested is None:
        return schedule
    interval = requested.get("interval", schedule["interval"])
    minimum = MINIMUM_DELAY.get(country, 2)
    delay = requested.get("delay_days", schedule.get("delay_days", minimum))
    if delay == "minimum":
        delay = minimum
    if isinstance(delay, int) and delay < minimum:
        raise invalid(
            f"The delay_days for {country} accounts must be at least {minimum}.",
            param="settings[payouts][schedule][delay_days]",
        )
    out: Obj = {"interval": interval, "delay_days": delay}
    if interval == "weekly":
        anchor = requested.get("weekly_anchor") or schedule.get("weekly_anchor")
        if not anchor:
            raise invalid(
                "weekly_anchor is required for a weekly payout schedule.",
                param="settings[payouts][schedule][weekly_anchor]",
            )
        out["weekly_anchor"] = anchor
        out["weekly_payout_days"] = [anchor]
    if interval == "monthly":
        anchor = requested.get("monthly_anchor") or schedule.get("monthly_anchor")
        if not anchor or not 1 <= int(anchor) <= 31:
            raise invalid(
                "monthly_anchor (1-31) is required for a monthly payout schedule.",
                param="settings[payouts][schedule][monthly_anchor]",
            )
        out["monthly_anchor"] = anchor
    return out


def active_account(sim: SimEngine, account_id: str, capability: str, param: str) -> Obj:
    """The account a charge or transfer names, if it exists, is still connected and has
    `capability` active (Stripe's errors otherwise)."""
    account = sim.state.accounts.get(account_id)
    if account is None or sim.private(account_id).get("deauthorized"):
        raise no_such("destination", account_id, param)
    if account["capabilities"].get(capability) != "active":
        raise invalid(
            f"Your destination account needs to have at least one of the following capabilities "
            f"enabled: {capability}.",
            param=param,
            code="insufficient_capabilities_for_transfer"
            if capability == "transfers"
            else "account_invalid",
        )
    return account


def create_account(sim: SimEngine, ctx: RequestContext, p: Obj) -> Obj:
    if ctx.account is not None:
        raise invalid("Connected accounts cannot create other accounts.")
    if "type" in p and "controller" in p:
        raise invalid(
            "You cannot specify both `type` and `controller`; use `controller` only.",
            param="controller",
        )
    controller = p.get("controller") or {}
    dashboard = ((controller.get("stripe_dashboard") or {}).get("type")) or (
        "express" if p.get("type") == "express" else None
    )
    country = str(p.get("country") or "US").upper()
    currency = p.get("default_currency") or (
        "eur" if country in EURO else DEFAULT_CURRENCY.get(country)
    )
    if currency is None:
        raise invalid(f"Country '{country}' is not supported.", param="country")
    check_currency(currency, "default_currency")
    requested = {
        name: "inactive"
        for name, cap in (p.get("capabilities") or {}).items()
        if cap.get("requested")
    }
    if dashboard == "express" and "transfers" not in requested:
        raise invalid(
            "Express accounts must request the `transfers` capability.",
            param="capabilities[transfers]",
        )
    settings = p.get("settings") or {}
    account_id = sim.new_id("acct", 16)
    account: Obj = {
        "id": account_id,
        "object": "account",
        "business_profile": {
            "mcc": None,
            "name": None,
            "product_description": None,
            "support_email": None,
            "url": None,
            **(p.get("business_profile") or {}),
        },
        "business_type": p.get("business_type"),
        "capabilities": requested,
        "charges_enabled": False,
        "controller": {
            "fees": {"payer": (controller.get("fees") or {}).get("payer", "application")},
            "is_controller": True,
            "losses": {"payments": (controller.get("losses") or {}).get("payments", "application")},
            "requirement_collection": controller.get("requirement_collection", "stripe"),
            "stripe_dashboard": {"type": dashboard or "none"},
            "type": "application",
        },
        "country": country,
        "created": sim.now(),
        "default_currency": currency,
        "details_submitted": False,
        "email": p.get("email"),
        "external_accounts": sim.list_object(f"/v1/accounts/{account_id}/external_accounts", []),
        "future_requirements": _requirements([], None),
        "metadata": p.get("metadata") or {},
        "payouts_enabled": False,
        "requirements": _requirements(ONBOARDING_REQUIREMENTS, "requirements.past_due"),
        "settings": {
            "payouts": {
                "debit_negative_balances": True,
                "schedule": _schedule(
                    country, (settings.get("payouts") or {}).get("schedule"), None
                ),
                "statement_descriptor": None,
            },
        },
        "tos_acceptance": {"date": None},
        "type": p.get("type") or dashboard or "none",
    }
    return sim.store(account)


def _account(sim: SimEngine, account_id: str) -> Obj:
    account = sim.state.accounts.get(account_id)
    if account is None or sim.private(account_id).get("deauthorized"):
        raise StripeAPIError(
            403,
            f"The provided key does not have access to account '{account_id}' (or that account "
            "does not exist). Application access may have been revoked.",
            type_="invalid_request_error",
            code="account_invalid",
        )
    return account


def retrieve_account(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
    return _account(sim, id)


def list_accounts(sim: SimEngine, ctx: RequestContext, p: Obj) -> list[Obj]:
    return [a for a in sim.state.accounts.values() if not sim.private(a["id"]).get("deauthorized")]


def update_account(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
    account = _account(sim, id)
    previous: Obj = {}
    schedule = ((p.get("settings") or {}).get("payouts") or {}).get("schedule")
    if schedule is not None:
        payouts = account["settings"]["payouts"]
        new = _schedule(account["country"], schedule, payouts["schedule"])
        if new != payouts["schedule"]:
            previous["settings"] = {"payouts": {"schedule": copy.deepcopy(payouts["schedule"])}}
            payouts["schedule"] = new
    for key in ("email", "default_currency"):
        if key in p and p[key] != account.get(key):
            previous[key] = account.get(key)
            account[key] = p[key]
    if "business_profile" in p:
        previous["business_profile"] = copy.deepcopy(account["business_profile"])
        account["business_profile"].update(p["business_profile"])
    if "metadata" in p:
        previous["metadata"] = dict(account["metadata"])
        account["metadata"] = {**account["metadata"], **p["metadata"]}
        account["metadata"] = {k: v for k, v in account["metadata"].items() if v}
    if previous:
        sim.emit(
            "account.updated",
            account,
            account=account["id"],
            previous_attributes=previous,
            request=ctx.request,
        )
    return account


def create_account_link(sim: SimEngine, ctx: RequestContext, p: Obj) -> Obj:
    account = _account(sim, p["account"])
    if "collect" in p and "collection_options" in p:
        raise invalid("You cannot specify both `collect` and `collection_options`.")
    for key in ("refresh_url", "return_url"):
        if not p.get(key):
            raise StripeAPIError(
                400,
                f"Missing required param: {key}.",
                code="parameter_missing",
                param=key,
                saved=False,
            )
    if p["type"] == "account_update" and not account["details_submitted"]:
        raise invalid("Account links of type account_update need a completed onboarding.")
    token = sim.new_id("link", 20)
    created = sim.now()
    sim.state.account_links[token] = {
        "account": account["id"],
        "refresh_url": p["refresh_url"],
        "return_url": p["return_url"],
        "expires_at": created + LINK_TTL,
        "used": False,
    }
    return {
        "object": "account_link",
        "created": created,
        "expires_at": created + LINK_TTL,
        "url": f"{sim.public_url}/simulator/onboarding/{token}",
    }


def create_login_link(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
    account = _account(sim, id)
    if account["controller"]["stripe_dashboard"]["type"] != "express":
        raise invalid("Login links are only for accounts with the Express dashboard.")
    if not account["details_submitted"]:
        raise invalid(
            "Cannot create a login link for an account that has not completed onboarding."
        )
    return {
        "object": "login_link",
        "created": sim.now(),
        "url": f"{sim.public_url}/simulator/dashboard/{account['id']}",
    }


def retrieve_balance(sim: SimEngine, ctx: RequestContext, p: Obj) -> Obj:
    if ctx.account is not None:
        _account(sim, ctx.account)
    entries = sim.balances(ctx.account)

    def side(name: str) -> list[Obj]:
        return [
            {"amount": amounts[name], "currency": currency, "source_types": {"card": amounts[name]}}
            for currency, amounts in sorted(entries.items())
        ]

    return {
        "object": "balance",
        "available": side("available"),
        "pending": side("pending"),
        "livemode": False,
    }


# --- what a person or Stripe does to an account ---------------------------------------------


def use_account_link(sim: SimEngine, token: str) -> tuple[Obj, bool]:
    """The link and whether it may still be used (unused, unexpired); marks it used."""
    link = sim.state.account_links.get(token)
    if link is None:
        raise no_such("account link", token)
    usable = not link["used"] and link["expires_at"] >= sim.now()
    link["used"] = True
    return link, usable


def _emit_updated(sim: SimEngine, account: Obj, before: Obj) -> None:
    previous = {k: v for k, v in before.items() if account.get(k) != v}
    sim.emit("account.updated", account, account=account["id"], previous_attributes=previous)
    for name, status in account["capabilities"].items():
        if (before.get("capabilities") or {}).get(name) != status:
            sim.emit(
                "capability.updated",
                {
                    "id": name,
                    "object": "capability",
                    "account": account["id"],
                    "requested": True,
                    "requirements": _requirements([], None),
                    "status": status,
                },
                account=account["id"],
            )


def complete_onboarding(sim: SimEngine, account_id: str) -> Obj:
    """The person submitted everything Stripe asked for: charges and payouts enabled."""
    return change_account(
        sim,
        account_id,
        details_submitted=True,
        charges_enabled=True,
        payouts_enabled=True,
        currently_due=[],
        past_due=[],
        disabled_reason=None,
        capabilities="active",
    )


def change_account(sim: SimEngine, account_id: str, **changes: Any) -> Obj:
    account = _account(sim, account_id)
    before = copy.deepcopy(account)
    for key in ("details_submitted", "charges_enabled", "payouts_enabled"):
        if key in changes:
            account[key] = bool(changes[key])
    requirements = account["requirements"]
    for key in ("currently_due", "past_due"):
        if key in changes:
            requirements[key] = list(changes[key])
            requirements["eventually_due"] = sorted(
                set(requirements["currently_due"]) | set(requirements["past_due"])
            )
    if "disabled_reason" in changes:
        requirements["disabled_reason"] = changes["disabled_reason"]
    caps = changes.get("capabilities")
    if isinstance(caps, str):
        account["capabilities"] = dict.fromkeys(account["capabilities"], caps)
    elif isinstance(caps, dict):
        account["capabilities"].update(caps)
    if account["details_submitted"] and not account["external_accounts"]["data"]:
        account["external_accounts"]["data"] = [
            {"id": sim.new_id("ba"), "object": "bank_account", "last4": "6789",
             "currency": account["default_currency"], "country": account["country"]}
        ]  # fmt: skip
        account["tos_acceptance"] = {"date": sim.now()}
    if account != before:
        _emit_updated(sim, account, before)
    return account


def deauthorize(sim: SimEngine, account_id: str) -> Obj:
    account = _account(sim, account_id)
    sim.private(account_id)["deauthorized"] = True
    application = {"id": "ca_simulator", "object": "application", "name": "marketplace"}
    sim.emit("account.application.deauthorized", application, account=account_id)
    return account
