"""Closed-loop load generator (aiohttp): C clients, each sending its next request when the last
answered, for a fixed duration after a warm-up. Reports throughput, p50, p99 and errors."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

# A request factory: given the session and the client index, send one request and return the
# HTTP status.
Request = Callable[[aiohttp.ClientSession, int], Awaitable[int]]


@dataclass
class Result:
    name: str
    concurrency: int
    duration: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    sent: int = 0  # every request of the run, warm-up included

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.count / self.duration if self.duration else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")

    @property
    def p99_ms(self) -> float:
        return self.percentile(99) * 1000


async def run_load(
    name: str,
    request: Request,
    *,
    concurrency: int,
    duration: float,
    warmup: float = 2.0,
    ok_statuses: frozenset[int] = frozenset({200, 201}),
    max_requests: int | None = None,
) -> Result:
    result = Result(name, concurrency, duration)
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    timeout = aiohttp.ClientTimeout(total=30)
    sent = 0
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + duration

        async def client(index: int) -> None:
            nonlocal sent
            while time.perf_counter() < stop_at:
                if max_requests is not None and sent >= max_requests:
                    return
                sent += 1
                t0 = time.perf_counter()
                try:
                    status = await request(session, index)
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                t1 = time.perf_counter()
                if t0 >= measure_from and t1 <= stop_at:
                    result.statuses[status] = result.statuses.get(status, 0) + 1
                    if status in ok_statuses:
                        result.latencies.append(t1 - t0)
                    else:
                        result.errors += 1

        await asyncio.gather(*(client(i) for i in range(concurrency)))
        result.sent = sent
        # A run bounded by max_requests may end before `duration`: rate over the time it took.
        result.duration = max(min(duration, time.perf_counter() - measure_from), 1e-9)
    return result
