"""`marketplace-api reconcile` and `marketplace-api stripe-webhooks` (registered in cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from marketplace_api.config import get_settings
from marketplace_api.errors import ProblemError

if TYPE_CHECKING:
    from marketplace_api.webhooks.subscriptions import EndpointPlan


async def _reconcile(args: argparse.Namespace, database_url: str) -> str:
    from marketplace_api.db import create_engine, create_sessionmaker
    from marketplace_api.integrations.stripe import StripeGateway, build_stripe_client
    from marketplace_api.webhooks.reconcile import reconcile

    settings = get_settings()
    client = build_stripe_client(settings)
    if client is None:
        raise ProblemError("STRIPE_SECRET_KEY is not set: nothing can be reconciled.")
    engine = create_engine(database_url, pool_size=2, max_overflow=0)
    try:
        report = await reconcile(
            create_sessionmaker(engine),
            StripeGateway(client),
            now=datetime.now(UTC),
            pending_payment_age=timedelta(minutes=args.pending_minutes),
            retry_failed=args.retry_failed,
        )
    finally:
        await engine.dispose()
    return report.render()


def cmd_reconcile(args: argparse.Namespace) -> int:
    from marketplace_api.cli import _use_resolved_database_url

    try:
        print(asyncio.run(_reconcile(args, _use_resolved_database_url())))
    except ProblemError as exc:
        print(f"error: {exc.detail or exc.title}", file=sys.stderr)
        return 1
    return 0


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


async def _stripe_webhooks(url: str, dry_run: bool, recreate: list[str]) -> None:
    from marketplace_api.integrations.stripe import StripeGateway, build_stripe_client
    from marketplace_api.webhooks.subscriptions import sync_webhook_endpoints

    client = build_stripe_client(get_settings())
    if client is None:
        raise ProblemError("STRIPE_SECRET_KEY is not set.")
    await sync_webhook_endpoints(
        StripeGateway(client),
        url,
        dry_run=dry_run,
        recreate=recreate,
        on_plan=lambda plan: _print_plan(plan, dry_run=dry_run),
    )


def cmd_stripe_webhooks(args: argparse.Namespace) -> int:
    problem = _check_url(args.url)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_stripe_webhooks(args.url, args.dry_run, args.recreate or []))
    except ProblemError as exc:
        print(f"error: {exc.detail or exc.title}", file=sys.stderr)
        print(
            "Any secret printed above is already live: keep it. Running the same command again is "
            "safe: endpoints that exist are updated, never duplicated.",
            file=sys.stderr,
        )
        return 1
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    reconcile = sub.add_parser(
        "reconcile",
        help="converge payments, vendors and pending webhook events to Stripe's state",
    )
    reconcile.add_argument(
        "--pending-minutes",
        type=int,
        default=10,
        help="check payments not final this many minutes after their last change (default 10)",
    )
    reconcile.add_argument(
        "--retry-failed",
        action="store_true",
        help="also put failed webhook events back to pending before retrying due ones",
    )
    reconcile.set_defaults(func=cmd_reconcile)

    webhooks = sub.add_parser(
        "stripe-webhooks",
        help="create or update the platform and Connect webhook endpoints on Stripe",
    )
    webhooks.add_argument("--url", required=True, help="https://<host>/webhooks/stripe")
    webhooks.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
    webhooks.add_argument(
        "--recreate",
        action="append",
        choices=["platform", "connect"],
        help="replace that endpoint by a new one (a new signing secret; the old endpoint is "
        "deleted): for a secret that was lost. Repeatable.",
    )
    webhooks.set_defaults(func=cmd_stripe_webhooks)
