"""What `marketplace-api stripe-webhooks` does (its arguments are parsed in cli.py): returns the
process's exit code."""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import urlsplit

from marketplace_api.config import Settings
from marketplace_api.errors import ProblemError
from marketplace_api.integrations.stripe import StripeGateway, build_stripe_client
from marketplace_api.webhooks.subscriptions import EndpointPlan, sync_webhook_endpoints


def _check_url(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc:
        return "the URL must be https://… (Stripe delivers live events to HTTPS only)"
    if not parts.path.endswith("/webhooks/stripe"):
        return "the URL should end with /webhooks/stripe (this service's endpoint)"
    return None


def _recreate_command(url: str, role: str) -> str:
    return f"marketplace-api stripe-webhooks --url {url} --recreate {role}"


def _print_plan(plan: EndpointPlan, *, dry_run: bool) -> None:
    """One endpoint's outcome, printed (and flushed) the moment it is known: a new signing secret
    is shown by Stripe only once, and the next Stripe call may fail."""
    verb = f"would {plan.action}" if dry_run and plan.action != "unchanged" else plan.action
    connect = "connect=true" if plan.role == "connect" else "connect=false"
    lines = [
        f"{plan.role} endpoint ({connect}): {verb} {plan.endpoint_id or ''}".rstrip()
        + f" — {len(plan.events)} event types",
        *(f"    {event}" for event in plan.events),
        *(f"  warning: {warning}" for warning in plan.warnings),
    ]
    if plan.secret:
        lines += [
            f"  NEW SIGNING SECRET of the {plan.role} endpoint (shown only this once): add it to",
            "  STRIPE_WEBHOOK_SECRETS, comma-separated, next to the secrets already there:",
            f"  {plan.secret}",
        ]
    elif plan.action in ("unchanged", "update") and not dry_run:
        lines += [
            "  its signing secret was shown only when it was created; if it is not in",
            "  STRIPE_WEBHOOK_SECRETS, replace the endpoint (new secret, old one deleted):",
            f"    {_recreate_command(plan.url, plan.role)}",
        ]
    print("\n".join(lines), flush=True)


async def _stripe_webhooks(
    settings: Settings, url: str, dry_run: bool, recreate: list[str]
) -> None:
    client = build_stripe_client(settings)
    if client is None:
        raise ProblemError("STRIPE_SECRET_KEY is not set.")
    await sync_webhook_endpoints(
        StripeGateway(client),
        url,
        dry_run=dry_run,
        recreate=recreate,
        on_plan=lambda plan: _print_plan(plan, dry_run=dry_run),
    )


def run_stripe_webhooks(settings: Settings, url: str, *, dry_run: bool, recreate: list[str]) -> int:
    problem = _check_url(url)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_stripe_webhooks(settings, url, dry_run, recreate))
    except ProblemError as exc:
        print(f"error: {exc.detail or exc.title}", file=sys.stderr)
        print(
            "Any secret printed above is already live: keep it. Running the same command again is "
            "safe: endpoints that exist are updated, never duplicated.",
            file=sys.stderr,
        )
        return 1
    return 0
