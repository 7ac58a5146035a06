"""HTTP layer: routers grouped by audience, thin over the domain services."""

from __future__ import annotations

from fastapi.routing import APIRoute


def operation_id(route: APIRoute) -> str:
    """`{tag}-{name}`, so a generated TypeScript client reads `buyer-create_order`-like names.

    Also the `operation` label of the HTTP metrics."""
    tag = route.tags[0] if route.tags else "default"
    return f"{tag}-{route.name}"
