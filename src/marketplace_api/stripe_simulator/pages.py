"""Stand-ins for Stripe's hosted pages, served by the API in simulator mode only: Express
onboarding, the Checkout Session page and the Express dashboard, plus the simulator's API
(`/simulator/api/v1/...`) and test helpers (`/simulator/api/_simulator/...`).

The account links and Checkout URLs the service hands out point here, so an SPA's redirects work
end to end on localhost: onboarding returns to `return_url`, Checkout to `success_url`.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qsl

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from marketplace_api.stripe_simulator.accounts import use_account_link
from marketplace_api.stripe_simulator.core import StripeSimulator
from marketplace_api.stripe_simulator.errors import StripeAPIError

router = APIRouter(prefix="/simulator", include_in_schema=False)

CARDS = {
    "pm_card_visa": "Pay with a card that succeeds (4242)",
    "pm_card_chargeDeclined": "Pay with a card that is declined (0002)",
    "pm_card_createDispute": "Pay with a card whose payment is later disputed (0259)",
}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}"
    "button{display:block;margin:.5rem 0;padding:.6rem 1rem;font-size:1rem}"
    ".note{color:#666;font-size:.9rem}.error{color:#b00}table{border-collapse:collapse}"
    "td,th{padding:.2rem .6rem;border-bottom:1px solid #ddd;text-align:left}"
)


def _sim(request: Request) -> StripeSimulator:
    sim: StripeSimulator = request.app.state.stripe_simulator
    return sim


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}"
        "<p class='note'>Stripe simulator: no real money, no network.</p></body></html>",
        status_code=status,
    )


def _money(amount: int, currency: str) -> str:
    return f"{amount} {currency.upper()} (minor units)"


@router.get("/onboarding/{token}")
async def onboarding_page(token: str, request: Request) -> Response:
    link = _sim(request).state.account_links.get(token)
    if link is None:
        return _page("Unknown onboarding link", "<p>This link does not exist.</p>", 404)
    account = _sim(request).state.accounts[link["account"]]
    due = "".join(f"<li>{html.escape(r)}</li>" for r in account["requirements"]["currently_due"])
    return _page(
        "Stripe Express onboarding",
        f"<p>Account <code>{account['id']}</code> ({html.escape(account['country'])}).</p>"
        f"<p>Stripe would ask for:</p><ul>{due or '<li>nothing</li>'}</ul>"
        f"<form method='post'><button type='submit'>Submit test details and finish</button>"
        "</form>",
    )


@router.post("/onboarding/{token}")
async def complete_onboarding(token: str, request: Request) -> Response:
    sim = _sim(request)
    try:
        link, usable = use_account_link(sim, token)
    except StripeAPIError:
        return _page("Unknown onboarding link", "<p>This link does not exist.</p>", 404)
    if not usable:  # expired or used: Stripe sends the person to refresh_url for a new link
        sim.changed()
        return RedirectResponse(link["refresh_url"], status_code=303)
    sim.complete_onboarding(link["account"])
    return RedirectResponse(link["return_url"], status_code=303)


@router.get("/checkout/{session_id}")
async def checkout_page(session_id: str, request: Request, error: str | None = None) -> Response:
    sim = _sim(request)
    sim.tick()
    session = sim.state.checkout_sessions.get(session_id)
    if session is None:
        return _page("Unknown Checkout Session", "<p>This session does not exist.</p>", 404)
    if session["status"] != "open":
        return _page("Checkout", f"<p>This Checkout Session is {session['status']}.</p>", 410)
    lines = "".join(
        f"<tr><td>{html.escape(li['description'])}</td><td>{li['quantity']}</td>"
        f"<td>{_money(li['amount_total'], li['currency'])}</td></tr>"
        for li in sim.private(session_id)["line_items"]
    )
    buttons = "".join(
        f"<button name='payment_method' value='{pm}'>{html.escape(label)}</button>"
        for pm, label in CARDS.items()
    )
    notice = f"<p class='error'>{html.escape(error)}</p>" if error else ""
    cancel = html.escape(session.get("cancel_url") or "")
    return _page(
        "Checkout",
        f"{notice}<table><tr><th>Item</th><th>Qty</th><th>Amount</th></tr>{lines}</table>"
        f"<p>Total: <b>{_money(session['amount_total'], session['currency'])}</b></p>"
        f"<form method='post'>{buttons}</form>"
        + (f"<p><a href='{cancel}'>Cancel and go back</a></p>" if cancel else ""),
    )


@router.post("/checkout/{session_id}")
async def pay_checkout(session_id: str, request: Request) -> Response:
    sim = _sim(request)
    form = dict(parse_qsl((await request.body()).decode()))
    method = form.get("payment_method", "pm_card_visa")
    if session_id not in sim.state.checkout_sessions or method not in CARDS:
        return _page("Checkout", "<p>Unknown session or card.</p>", 404)
    try:
        session = sim.pay_checkout_session(session_id, method)
    except StripeAPIError as exc:
        return _page("Checkout", f"<p class='error'>{html.escape(exc.message)}</p>", 410)
    if session["status"] != "complete":
        error = sim.state.payment_intents[session["payment_intent"]]["last_payment_error"]
        return await checkout_page(session_id, request, error=error["message"])
    target = str(session.get("success_url") or "/").replace("{CHECKOUT_SESSION_ID}", session_id)
    return RedirectResponse(target, status_code=303)


@router.get("/dashboard/{account_id}")
async def dashboard(account_id: str, request: Request) -> Response:
    sim = _sim(request)
    account = sim.state.accounts.get(account_id)
    if account is None:
        return _page("Unknown account", "<p>No such account.</p>", 404)
    balances = "".join(
        f"<tr><td>{c.upper()}</td><td>{b['available']}</td><td>{b['pending']}</td></tr>"
        for c, b in sim.balances(account_id).items()
    )
    transfers = "".join(
        f"<tr><td><code>{t['id']}</code></td><td>{_money(t['amount'], t['currency'])}</td>"
        f"<td>{t['amount_reversed']}</td></tr>"
        for t in sim.state.transfers.values()
        if t["destination"] == account_id
    )
    payouts = "".join(
        f"<tr><td><code>{p['id']}</code></td><td>{_money(p['amount'], p['currency'])}</td>"
        f"<td>{p['status']}</td></tr>"
        for p in sim.state.payouts.values()
        if sim.state.owner[p["id"]] == account_id
    )
    return _page(
        "Express dashboard",
        f"<p>Account <code>{account_id}</code>: charges "
        f"{'enabled' if account['charges_enabled'] else 'disabled'}, payouts "
        f"{'enabled' if account['payouts_enabled'] else 'disabled'}.</p>"
        f"<h2>Balance</h2><table><tr><th>Currency</th><th>Available</th><th>Pending</th></tr>"
        f"{balances}</table><h2>Transfers</h2><table><tr><th>Id</th><th>Amount</th>"
        f"<th>Reversed</th></tr>{transfers}</table><h2>Payouts</h2><table><tr><th>Id</th>"
        f"<th>Amount</th><th>Status</th></tr>{payouts}</table>",
    )


@router.api_route("/api/{path:path}", methods=["GET", "POST", "DELETE"])
async def stripe_api(path: str, request: Request) -> Response:
    """The simulator's Stripe API and test helpers over HTTP (what Stripe.js or a script would
    call), e.g. `POST /simulator/api/v1/payment_intents/{id}/confirm` with a publishable key."""
    forwarded = httpx.Request(
        request.method,
        httpx.URL(path="/" + path, query=request.url.query.encode()),
        headers=dict(request.headers),
        content=await request.body(),
    )
    answer = _sim(request).handle(forwarded)
    return Response(
        answer.content,
        status_code=answer.status_code,
        headers={k: v for k, v in answer.headers.items() if k.lower() != "content-length"},
    )
