"""Rate limits on the routes attackers and buggy clients hammer: login, register, checkout, refunds.

Moving-window limits from the `limits` library. Storage is in-process memory by default (each API
process counts on its own) and Redis when `RATE_LIMIT_STORAGE_URL` is set
(`async+redis://host:6379/0`), so several replicas share one budget. A refused request answers
`429 rate_limited` with `Retry-After`.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from marketplace_api.errors import ProblemError


class RateLimited(ProblemError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Rate limit exceeded; retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )


class RateLimiter:
    def __init__(self, storage_url: str | None = None, *, key_prefix: str = "marketplace") -> None:
        options: dict[str, str] = {}
        if storage_url and storage_url.startswith(("redis://", "rediss://")):
            storage_url = "async+" + storage_url
        if storage_url and "redis" in storage_url:
            options["key_prefix"] = key_prefix
        storage = storage_from_string(storage_url or "async+memory://", **options)
        if not isinstance(storage, Storage):
            raise ValueError("RATE_LIMIT_STORAGE_URL must use an async scheme (async+redis://…)")
        self.storage = storage
        self._limiter = MovingWindowRateLimiter(self.storage)

    async def hit(self, scope: str, key: str, limit: str) -> None:
        """Count one request of `key` against `limit` (e.g. "10/minute"); raise when over."""
        item = parse(limit)
        if await self._limiter.hit(item, scope, key):
            return
        await self._refuse(item, scope, key)

    async def check(self, scope: str, key: str, limit: str) -> None:
        """Raise if `key` has no budget left under `limit`, without counting this request."""
        item = parse(limit)
        if not await self._limiter.test(item, scope, key):
            await self._refuse(item, scope, key)

    async def _refuse(self, item: RateLimitItem, scope: str, key: str) -> None:
        stats = await self._limiter.get_window_stats(item, scope, key)
        raise RateLimited(retry_after=max(1, math.ceil(stats.reset_time - time.time())))
