"""Which Stripe events each of our two webhook endpoints subscribes to, and syncing them.

A Connect platform needs two endpoints with the same URL and different signing secrets:

* the **platform** endpoint (`connect=false`) gets events of our own account: destination and
  separate-charge `payment_intent.*`, `checkout.session.*`, `charge.*`, `refund.*`, disputes,
  `transfer.*`, `application_fee.*`;
* the **Connect** endpoint (`connect=true`) gets events of connected accounts (with
  `event.account` set): `account.*`, `capability.updated`, `payout.*`, and the direct-charge
  `payment_intent.*`, `checkout.session.*`, `charge.*`, `refund.*` and disputes.

An endpoint that was never subscribed to Connect events is a classic silent failure: vendors'
`account.updated` and direct charges' events would simply never arrive. The lists are derived from
the handlers actually registered (`dispatch.load_handlers()`) plus `UPCOMING_EVENT_TYPES`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from marketplace_api.integrations.stripe import (
    STRIPE_API_VERSION,
    STRIPE_EVENT_TYPES,
    StripeGateway,
    WebhookEndpoint,
)
from marketplace_api.webhooks.dispatch import load_handlers

# Money movements after the payment (refunds, disputes, transfers, payouts, application fees).
# Listed here, and only here, so the endpoints are subscribed before those handlers are deployed;
# until then such events are stored as `ignored` (an admin can retry them once a handler exists).
UPCOMING_EVENT_TYPES: tuple[str, ...] = (
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
    "transfer.created",
    "transfer.reversed",
    "transfer.updated",
    "payout.paid",
    "payout.failed",
    "application_fee.refunded",
)

# Objects that only exist on connected accounts, or only on the platform.
CONNECT_ONLY_PREFIXES = ("account.", "capability.", "payout.", "person.")
PLATFORM_ONLY_PREFIXES = ("transfer.", "application_fee.")

METADATA_KEY = "marketplace_endpoint"  # "platform" | "connect": Stripe does not return `connect`
ROLES = ("platform", "connect")


def handled_event_types() -> list[str]:
    """Every Stripe event type we handle or will handle, sorted. Types Stripe does not know (test
    handlers, typos) are left out: Stripe would reject the whole endpoint."""
    types = set(load_handlers()) | set(UPCOMING_EVENT_TYPES)
    return sorted(t for t in types if t in STRIPE_EVENT_TYPES)


def endpoint_event_types() -> dict[str, list[str]]:
    """`{"platform": [...], "connect": [...]}`."""
    types = handled_event_types()
    return {
        "platform": [t for t in types if not t.startswith(CONNECT_ONLY_PREFIXES)],
        "connect": [t for t in types if not t.startswith(PLATFORM_ONLY_PREFIXES)],
    }


@dataclass(frozen=True, slots=True)
class EndpointPlan:
    role: str  # platform | connect
    action: str  # create | recreate | update | unchanged
    url: str
    events: list[str]
    endpoint_id: str | None = None
    secret: str | None = None  # only right after a create (or recreate)
    warnings: list[str] = field(default_factory=list)


def _description(role: str) -> str:
    return f"marketplace-api {role} events"


async def sync_webhook_endpoints(
    gateway: StripeGateway,
    url: str,
    *,
    dry_run: bool = False,
    recreate: Sequence[str] = (),
    on_plan: Callable[[EndpointPlan], None] | None = None,
) -> list[EndpointPlan]:
    """Create or update our two endpoints for `url` so each has exactly the events we need.

    Endpoints are matched by URL and the `marketplace_endpoint` metadata we set on creation, so
    running this again updates them and never creates a second one. `on_plan` is called with each
    endpoint's plan as soon as it is carried out — before the next endpoint is touched — so a
    new signing secret (shown by Stripe once, in the create answer) reaches the operator even
    when the next call fails. A role in `recreate` gets a new endpoint (new secret) and the old
    one is deleted once the new one exists: the way to recover a secret that was lost. With
    `dry_run`, nothing is written to Stripe."""
    existing = await gateway.list_webhook_endpoints()
    wanted = endpoint_event_types()
    plans: list[EndpointPlan] = []

    def done(plan: EndpointPlan) -> None:
        plans.append(plan)
        if on_plan is not None:
            on_plan(plan)

    for role in ROLES:
        events = wanted[role]
        metadata = {METADATA_KEY: role}
        matches = [e for e in existing if e.url == url and e.metadata.get(METADATA_KEY) == role]
        warnings = [
            f"{e.id} has the same URL but no `{METADATA_KEY}` metadata; delete it if unused"
            for e in existing
            if e.url == url and METADATA_KEY not in e.metadata and role == ROLES[0]
        ]
        if len(matches) > 1:
            warnings.append(
                f"several {role} endpoints for this URL: {', '.join(e.id for e in matches)}; "
                f"updating {matches[0].id}"
            )
        if not matches or role in recreate:
            replaced = matches[0].id if matches else None
            action = "recreate" if replaced else "create"
            plan = EndpointPlan(role, action, url, events, replaced, warnings=warnings)
            if not dry_run:
                if replaced:
                    # Another idempotency key than the first creation's (which Stripe could
                    # answer with that old endpoint): the metadata names the one it replaces.
                    metadata = {**metadata, "replaces": replaced}
                created = await gateway.create_webhook_endpoint(
                    url=url,
                    enabled_events=events,
                    connect=role == "connect",
                    description=_description(role),
                    metadata=metadata,
                )
                plan = replace(plan, endpoint_id=created.id, secret=created.secret)
                if replaced and replaced != created.id:
                    done(plan)
                    await gateway.delete_webhook_endpoint(replaced)
                    continue
            done(plan)
            continue
        current: WebhookEndpoint = matches[0]
        if current.api_version not in (None, STRIPE_API_VERSION):
            warnings.append(
                f"{current.id} is pinned to API version {current.api_version}, not "
                f"{STRIPE_API_VERSION}; it cannot be changed: delete it and run this again"
            )
        if sorted(current.enabled_events) == events and current.status == "enabled":
            done(EndpointPlan(role, "unchanged", url, events, current.id, None, warnings))
            continue
        if not dry_run:
            await gateway.update_webhook_endpoint(
                current.id,
                enabled_events=events,
                description=_description(role),
                metadata=metadata,
            )
        done(EndpointPlan(role, "update", url, events, current.id, None, warnings))
    return plans
