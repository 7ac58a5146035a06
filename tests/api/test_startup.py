"""What the API's startup leaves behind for the requests that follow."""

from __future__ import annotations

import gc

from marketplace_api.main import create_app
from marketplace_api.webhooks import dispatch
from tests.conftest import make_settings


async def test_startup_imports_the_handlers_and_freezes_the_long_lived_heap(
    database_url: str,
) -> None:
    api = create_app(make_settings(database_url, stripe_secret_key=None))
    gc.unfreeze()
    try:
        async with api.router.lifespan_context(api):
            # Frozen, the ~200,000 startup objects are out of the cyclic GC's full passes (each
            # one stalled every request for ~250 ms on a 2-core VM).
            assert gc.get_freeze_count() > 50_000
            assert "payment_intent.succeeded" in dispatch.HANDLERS
    finally:
        gc.unfreeze()
