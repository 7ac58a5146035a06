"""`marketplace-api` command line: serve, worker, migrate, create-admin, demo, export-openapi,
reconcile, stripe-webhooks.

Each command imports what it runs inside its own function: `marketplace-api migrate` or `--help`
should not pay for loading the web app, the job worker or every domain.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
import json
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from marketplace_api.config import Settings, get_settings


def _load_settings() -> Settings | None:
    """The settings, or None after printing why they were refused (production names each unsafe
    setting; a traceback would only bury the message)."""
    try:
        return get_settings()
    except ValidationError as exc:
        reasons = (str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        print("error: " + "; ".join(reasons), file=sys.stderr)
        return None


def _use_resolved_database_url() -> str:
    """Resolve DATABASE_URL once (starting the embedded PostgreSQL when unset) and export it, so
    uvicorn's worker processes and Alembic connect to the same database."""
    from marketplace_api.migrations import resolve_database_url

    url = resolve_database_url(get_settings())
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    return url


async def _migrate(url: str, revision: str = "head") -> None:
    from marketplace_api import migrations
    from marketplace_api.db import create_engine

    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as connection:
            await migrations.upgrade(connection, revision)
    finally:
        await engine.dispose()


def cmd_migrate(args: argparse.Namespace) -> int:
    asyncio.run(_migrate(_use_resolved_database_url(), args.revision))
    print(f"database migrated to {args.revision}")
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's forwarded-header options: X-Forwarded-For/-Proto are believed only from
    TRUSTED_PROXIES. Without any, uvicorn would trust its own default (127.0.0.1, or the
    FORWARDED_ALLOW_IPS variable), so the headers are switched off altogether."""
    if not settings.trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": ",".join(settings.trusted_proxies)}


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from marketplace_api.observability import configure_logging

    settings = _load_settings()
    if settings is None:
        return 2
    configure_logging(settings.log_level, json_logs=settings.log_json)
    if settings.use_stripe_simulator:
        if args.workers > 1:
            # The simulator lives in the API process: several processes would be several Stripes.
            print("error: the Stripe simulator needs --workers 1", file=sys.stderr)
            return 2
        if settings.stripe_simulator != "on" and not _is_loopback(args.host):
            # Its pages and test helpers take no key: anyone who can reach it can "pay".
            print(
                "error: the Stripe simulator is served on loopback only; set "
                "STRIPE_SIMULATOR=on to serve it on another address",
                file=sys.stderr,
            )
            return 2
        # Decided here, on the settings as given: the embedded database's URL, set below for the
        # server process, must not turn `auto` off there.
        os.environ["STRIPE_SIMULATOR"] = "on"
        # Hosted-page links and the webhook endpoint point at this server.
        if "stripe_simulator_public_url" not in settings.model_fields_set:
            host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host  # noqa: S104
            os.environ["STRIPE_SIMULATOR_PUBLIC_URL"] = f"http://{host}:{args.port}"
    if settings.database_url is None and not args.no_worker:
        # The embedded default is the one-command setup: the API also runs the job worker.
        os.environ["RUN_WORKER_IN_PROCESS"] = "true"
    url = _use_resolved_database_url()
    if not args.no_migrate:
        asyncio.run(_migrate(url))
    uvicorn.run(
        "marketplace_api.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=None if args.reload else args.workers,
        reload=args.reload,
        **proxy_options(settings),
        log_config=None,
        access_log=False,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from marketplace_api.observability import configure_logging
    from marketplace_api.worker.runner import run_worker

    settings = _load_settings()
    if settings is None:
        return 2
    configure_logging(settings.log_level, json_logs=settings.log_json)
    url = _use_resolved_database_url()
    queues = [q for item in args.queues or [] for q in item.split(",") if q]
    # SIGTERM/SIGINT: stop fetching, let running jobs finish, exit 0.
    asyncio.run(
        run_worker(
            get_settings(),
            url,
            concurrency=args.concurrency or settings.worker_concurrency,
            queues=queues or None,
            name=args.name,
        )
    )
    return 0


async def _create_admin(email: str, password: str) -> None:
    from marketplace_api.accounts.models import Role
    from marketplace_api.accounts.service import create_user
    from marketplace_api.db import create_engine, create_sessionmaker

    engine = create_engine(_use_resolved_database_url(), pool_size=1, max_overflow=0)
    try:
        async with create_sessionmaker(engine)() as session:
            await create_user(session, email=email, password=password, role=Role.admin)
    finally:
        await engine.dispose()


def cmd_create_admin(args: argparse.Namespace) -> int:
    from marketplace_api.errors import ProblemError

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = os.environ.get("ADMIN_PASSWORD") or getpass.getpass("Password: ")
    if len(password) < 10:
        print("error: the password must have at least 10 characters", file=sys.stderr)
        return 2
    try:
        asyncio.run(_create_admin(args.email, password))
    except ProblemError as exc:
        print(f"error: {exc.detail or exc.title}", file=sys.stderr)
        return 1
    print(f"admin {args.email} created")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from marketplace_api.demo import run_demo

    return 0 if asyncio.run(run_demo(args.api, wait_seconds=args.wait)) else 1


def cmd_reconcile(args: argparse.Namespace) -> int:
    from marketplace_api.reconcile.commands import run_reconcile

    url = _use_resolved_database_url()
    return run_reconcile(
        get_settings(), url, pending_minutes=args.pending_minutes, retry_failed=args.retry_failed
    )


def cmd_stripe_webhooks(args: argparse.Namespace) -> int:
    from marketplace_api.webhooks.commands import run_stripe_webhooks

    return run_stripe_webhooks(
        get_settings(), args.url, dry_run=args.dry_run, recreate=args.recreate or []
    )


def openapi_document() -> str:
    from marketplace_api.main import create_app

    # The schema must not depend on the machine's environment.
    app = create_app(Settings(_env_file=None, environment="development"))
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False) + "\n"


def cmd_export_openapi(args: argparse.Namespace) -> int:
    document = openapi_document()
    if args.output == "-":
        sys.stdout.write(document)
    else:
        Path(args.output).write_text(document, encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marketplace-api", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="apply migrations and run the API with uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--reload", action="store_true", help="restart on code changes (dev)")
    serve.add_argument("--no-migrate", action="store_true", help="do not run migrations first")
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="on the embedded database, do not run the job worker inside the API process",
    )
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run background jobs (stop with SIGTERM/SIGINT)")
    worker.add_argument(
        "--concurrency", type=int, default=None, help="jobs run at once (WORKER_CONCURRENCY)"
    )
    worker.add_argument(
        "--queues",
        nargs="*",
        metavar="QUEUE",
        help="queues to work on, e.g. `default maintenance` (default: all)",
    )
    worker.add_argument("--name", default="worker", help="worker name shown in logs")
    worker.set_defaults(func=cmd_worker)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.set_defaults(func=cmd_migrate)

    admin = sub.add_parser("create-admin", help="create an operator (admin) account")
    admin.add_argument("email")
    admin.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    admin.set_defaults(func=cmd_create_admin)

    demo = sub.add_parser(
        "demo", help="tell the marketplace story against a running API on the Stripe simulator"
    )
    demo.add_argument("--api", default="http://127.0.0.1:8000", help="the API's base URL")
    demo.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait for each webhook-driven state"
    )
    demo.set_defaults(func=cmd_demo)

    export = sub.add_parser("export-openapi", help="write the OpenAPI document")
    export.add_argument("--output", "-o", default="openapi/openapi.json")
    export.set_defaults(func=cmd_export_openapi)

    reconcile = sub.add_parser(
        "reconcile",
        help="converge payments, vendors and pending webhook events to Stripe's state",
    )
    reconcile.add_argument(
        "--pending-minutes",
        type=int,
        default=10,
        help="check payments not final this many minutes after their last change (default 10)",
    )
    reconcile.add_argument(
        "--retry-failed",
        action="store_true",
        help="also put failed webhook events back to pending before retrying due ones",
    )
    reconcile.set_defaults(func=cmd_reconcile)

    webhooks = sub.add_parser(
        "stripe-webhooks",
        help="create or update the platform and Connect webhook endpoints on Stripe",
    )
    webhooks.add_argument("--url", required=True, help="https://<host>/webhooks/stripe")
    webhooks.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
    webhooks.add_argument(
        "--recreate",
        action="append",
        choices=["platform", "connect"],
        help="replace that endpoint by a new one (a new signing secret; the old endpoint is "
        "deleted): for a secret that was lost. Repeatable.",
    )
    webhooks.set_defaults(func=cmd_stripe_webhooks)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
