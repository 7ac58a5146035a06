"""Reconciliation with Stripe: pull Stripe's state for whatever webhooks missed and apply it
through the webhook handlers (`service`, `kinds`, `objects`; `checks`: the round-robin cursor).
Above the domains and `webhooks`; imported by the worker's tasks and the CLI."""
