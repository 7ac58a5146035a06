"""Where a worker's CPU goes, by layer, from py-spy's collapsed stacks (`bench/run.py --profile`).

    .venv/bin/python bench/layers.py /tmp/prof/B1.txt [--cpu-ms 15.7] [--top 25]

Two views of the same samples (py-spy counts only running threads, so a sample is CPU):

- **self, by layer**: each sample goes to the innermost frame that belongs to a known layer
  (asyncpg, the ORM, pydantic, the Stripe SDK, …); standard-library frames count for the layer
  that called them, so `json` under the Stripe SDK is the SDK's.
- **inclusive, by stage**: the share of samples whose stack passes through a stage of our request
  path (the middleware, the token check, idempotency, the checkout, the webhook pipeline, …). The
  stages nest, so these do not add up.

With `--cpu-ms` (the run's API CPU per request) every share is also shown in ms per request.

py-spy counts a thread that is runnable but not running as busy. On a loaded machine a worker
that writes to a loopback socket wakes the reader (PostgreSQL, the stand-in) and is often
preempted right there: up to half of the samples sat in `_SelectorSocketTransport.write` while the
process's system time was under a tenth of its CPU. Those samples (OFF_CPU) are counted apart and
left out of the shares and the ms.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# Innermost match wins; first pattern in this list wins within one frame.
LAYERS: list[tuple[str, str]] = [
    ("asyncpg (driver, protocol)", r"[(/]asyncpg/"),
    ("SQLAlchemy ORM (unit of work, loading)", r"[(/]sqlalchemy/orm/"),
    ("SQLAlchemy Core (compile, execute, pool)", r"[(/]sqlalchemy/"),
    ("pydantic", r"[(/]pydantic(_core)?/"),
    ("Stripe SDK", r"[(/]stripe/"),
    ("httpx / httpcore (Stripe transport)", r"[(/](httpx|httpcore|h11|anyio|sniffio)/"),
    ("logging", r"[(/]logging/|pythonjsonlogger|/observability\.py"),
    ("metrics (prometheus_client)", r"[(/]prometheus_client/|marketplace_api/metrics\.py"),
    ("tracing (opentelemetry)", r"[(/]opentelemetry/|marketplace_api/tracing\.py"),
    ("JWT (pyjwt, hmac)", r"[(/]jwt/|[(/]hmac\.py"),
    ("rate limiter (limits)", r"[(/]limits/|marketplace_api/ratelimit\.py"),
    (
        "middleware (ours, correlation id, CORS)",
        r"marketplace_api/middleware\.py|asgi_correlation_id/|middleware/cors\.py|UnhandledErrorMiddleware",
    ),
    ("FastAPI routing and dependencies", r"[(/]fastapi/"),
    ("Starlette", r"[(/]starlette/"),
    ("uvicorn / httptools (HTTP server)", r"[(/]uvicorn/|httptools"),
    ("marketplace_api (our code)", r"[(/]marketplace_api/"),
    ("asyncio / uvloop (event loop)", r"[(/]asyncio/|uvloop"),
]

OFF_CPU = r"_SelectorSocketTransport\.write \(asyncio/selector_events\.py"

# What an AsyncSession runs in its greenlet (compiling, cache keys, the ORM's execution, the
# driver's calls) is sampled with a stack of its own, rooted at the sync Session's method: it names
# no caller, so `--grep` keeps these stacks whatever they match, and the stages undercount them.
GREENLET_ROOT = r"Session\.\w+ \(.*sqlalchemy/orm/session\.py"

STAGES: list[tuple[str, str]] = [
    (
        "middleware stack (everything under the first middleware)",
        r"SecurityHeadersMiddleware|"
        r"__call__ \(.*/middleware\.py",
    ),
    ("request body/params validation (FastAPI solve_dependencies)", r"solve_dependencies"),
    ("token + user load (get_current_user)", r"get_current_user"),
    ("JWT decode", r"decode_access_token"),
    ("rate limit dependency", r"by_user|by_address"),
    ("idempotency", r"/idempotency/"),
    ("checkout (checkout/service.py)", r"/checkout/service\.py"),
    ("Stripe gateway call (integrations/stripe)", r"/integrations/stripe/"),
    ("webhook pipeline (webhooks/)", r"/webhooks/"),
    ("webhook signature", r"verify_event"),
    ("ledger", r"/ledger/"),
    ("notifications", r"/notifications/"),
    ("session close / rollback", r"close \(.*sqlalchemy/ext/asyncio/session|_close_impl"),
    (
        "response serialisation (serialize_response, JSONResponse.render)",
        r"serialize_response|render \(.*starlette/responses",
    ),
    (
        "access log + latency metric (AccessLogMiddleware finally)",
        r"observe_request|"
        r"info \(.*logging/__init__",
    ),
    ("asyncpg", r"[(/]asyncpg/"),
    ("SQLAlchemy ORM", r"[(/]sqlalchemy/orm/"),
    ("SQLAlchemy compile", r"compiler\.py|_compile_w_cache"),
    ("pydantic", r"[(/]pydantic(_core)?/"),
    ("Stripe SDK", r"[(/]stripe/"),
    ("GC (gc_collect, frozen or not)", r"<gc>|gc_collect"),
]


def in_greenlet(stack: tuple[str, ...]) -> bool:
    return bool(stack) and re.match(GREENLET_ROOT, stack[0]) is not None


def read(path: Path, grep: str | None = None) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if grep and not re.search(grep, stack) and not in_greenlet(tuple(stack.split(";"))):
            continue
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def layer_of(stack: tuple[str, ...]) -> str:
    for frame in reversed(stack):
        for name, pattern in LAYERS:
            if re.search(pattern, frame):
                return name
    return "other (interpreter, stdlib at the top)"


def report(path: Path, cpu_ms: float | None, top: int, grep: str | None = None) -> str:
    stacks = read(path, grep)
    off_cpu = sum(c for stack, c in stacks.items() if re.search(OFF_CPU, stack[-1]))
    stacks = Counter({k: c for k, c in stacks.items() if not re.search(OFF_CPU, k[-1])})
    total = sum(stacks.values()) or 1
    by_layer: Counter[str] = Counter()
    by_stage: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for stack, count in stacks.items():
        by_layer[layer_of(stack)] += count
        joined = ";".join(stack)
        for name, pattern in STAGES:
            if re.search(pattern, joined):
                by_stage[name] += count
        leaves[stack[-1]] += count

    def line(name: str, count: int) -> str:
        share = 100 * count / total
        ms = f" {share * cpu_ms / 100:6.2f} ms" if cpu_ms else ""
        return f"  {share:5.1f} %{ms}  {name}"

    out = [f"{path}: {total} samples" + (f" matching {grep!r}" if grep else "")]
    out.append(f"  (and {off_cpu} preempted at a socket write, left out)")
    greenlet = sum(c for stack, c in stacks.items() if in_greenlet(stack))
    out.append(f"  ({greenlet} of them in AsyncSession's greenlet: no stage names them)")
    out.append("self, by layer (innermost known frame):")
    out += [line(n, c) for n, c in by_layer.most_common()]
    out.append("inclusive, by stage (nested; does not add up):")
    out += [line(n, by_stage[n]) for n, _ in STAGES if by_stage[n]]
    out.append(f"top {top} leaf frames:")
    out += [line(n, c) for n, c in leaves.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", type=Path, nargs="+")
    parser.add_argument("--cpu-ms", type=float, help="the run's API CPU per request")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--grep", help="only the stacks matching this regex (e.g. one route)")
    args = parser.parse_args()
    for path in args.profiles:
        print(report(path, args.cpu_ms, args.top, args.grep))
        print()


if __name__ == "__main__":
    main()
