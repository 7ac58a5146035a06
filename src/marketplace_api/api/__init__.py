"""HTTP layer: routers grouped by audience, thin over the domain services."""
