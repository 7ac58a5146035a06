"""Named points where the process-kill tests make the API die (`SIGKILL`, no clean-up at all).

A no-op unless both `ENVIRONMENT=test` and `MARKETPLACE_TEST_CRASH_AT=<point>` are set in the
process environment (the kill suite sets them on the uvicorn subprocess it starts). Points:
`resource_committed` (the transaction that bound a created row to its Idempotency-Key has
committed) and `answer_stored` (the final answer is stored, not yet sent).
"""

from __future__ import annotations

import os
import signal

ENV_VAR = "MARKETPLACE_TEST_CRASH_AT"


def enabled() -> bool:
    return os.environ.get("ENVIRONMENT") == "test" and bool(os.environ.get(ENV_VAR))


def reached(point: str) -> None:
    if enabled() and os.environ.get(ENV_VAR) == point:
        os.kill(os.getpid(), signal.SIGKILL)
