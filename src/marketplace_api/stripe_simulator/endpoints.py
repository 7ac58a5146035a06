"""Webhook endpoints (the signing secret is shown once, in the answer to the create) and the
events API (`GET /v1/events`)."""

from __future__ import annotations

from marketplace_api.stripe_simulator.context import RequestContext
from marketplace_api.stripe_simulator.engine import API_VERSION, SimEngine
from marketplace_api.stripe_simulator.errors import invalid
from marketplace_api.stripe_simulator.events import EVENT_TYPES
from marketplace_api.stripe_simulator.state import Obj


def _check_events(events: list[str]) -> None:
    if not events:
        raise invalid("enabled_events must not be empty.", param="enabled_events")
    for i, name in enumerate(events):
        if name not in EVENT_TYPES:
            raise invalid(
                f"Invalid enabled_events[{i}]: must be one of the event types Stripe knows.",
                param=f"enabled_events[{i}]",
            )


def _check_url(url: str) -> None:
    if not url.startswith(("https://", "http://")):
        raise invalid("Invalid URL: the URL must be http(s).", param="url", code="url_invalid")


def create_endpoint(sim: SimEngine, ctx: RequestContext, p: Obj) -> Obj:
    if ctx.account is not None:
        raise invalid("Webhook endpoints belong to the platform; do not send Stripe-Account.")
    _check_url(p["url"])
    _check_events(p["enabled_events"])
    endpoint: Obj = {
        "id": sim.new_id("we"),
        "object": "webhook_endpoint",
        "api_version": p.get("api_version"),
        "application": None,
        "created": sim.now(),
        "description": p.get("description"),
        "enabled_events": list(p["enabled_events"]),
        "livemode": False,
        "metadata": p.get("metadata") or {},
        "status": "enabled",
        "url": p["url"],
    }
    secret = "whsec_" + sim.new_id("x", 32)[2:]
    sim.store(endpoint)
    sim.private(endpoint["id"]).update(connect=bool(p.get("connect")), secret=secret)
    return {**endpoint, "secret": secret}  # only this answer carries the secret


def retrieve_endpoint(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
    return sim.get("webhook_endpoint", id, None)


def list_endpoints(sim: SimEngine, ctx: RequestContext, p: Obj) -> list[Obj]:
    return list(sim.state.webhook_endpoints.values())


def update_endpoint(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
    endpoint = sim.get("webhook_endpoint", id, None)
    if "url" in p:
        _check_url(p["url"])
        endpoint["url"] = p["url"]
    if "enabled_events" in p:
        _check_events(p["enabled_events"])
        endpoint["enabled_events"] = list(p["enabled_events"])
    if "disabled" in p:
        endpoint["status"] = "disabled" if p["disabled"] else "enabled"
    for key in ("description", "metadata"):
        if key in p:
            endpoint[key] = p[key]
    return endpoint


def delete_endpoint(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
    sim.get("webhook_endpoint", id, None)
    del sim.state.webhook_endpoints[id]
    return {"id": id, "object": "webhook_endpoint", "deleted": True}


def retrieve_event(sim: SimEngine, ctx: RequestContext, p: Obj, id: str) -> Obj:
    return sim.get("event", id, ctx.account)


def list_events(sim: SimEngine, ctx: RequestContext, p: Obj) -> list[Obj]:
    types = set(p.get("types") or ([p["type"]] if "type" in p else []))
    return [
        e
        for e in sim.state.events.values()
        if sim.state.owner[e["id"]] == ctx.account and (not types or e["type"] in types)
    ]


__all__ = ["API_VERSION"]
