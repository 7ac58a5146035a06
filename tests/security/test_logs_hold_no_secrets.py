"""Secrets and card data never reach the logs: a full flow (register, log in, refresh, check out,
a Stripe error, a signed webhook) and then the error paths (a database error inside a request, a
failing webhook handler, poison events, Stripe's errors) are run with every logger at DEBUG, and
each secret they handled is searched for in every record — message, arguments, structured extras
and formatted tracebacks alike — and in every line both log formats (JSON and text) write of it.
(A failing job: tests/jobs/test_job_logs.py.)"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import respx
from fastapi import FastAPI
from pydantic import BaseModel, ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.config import Settings
from marketplace_api.db import create_engine
from marketplace_api.deps import AppState, get_session
from marketplace_api.main import create_app
from marketplace_api.observability import build_formatter, install_safe_exception_logging
from marketplace_api.webhooks.dispatch import EventContext, load_handlers
from tests.conftest import PASSWORD, AuthUser, build_state
from tests.fixtures.catalog import make_listing, make_vendor
from tests.fixtures.stripe import WEBHOOK_SECRET, event, event_body, sign, stripe_error
from tests.fixtures.stripe_mocks import create_intent_handler

CARD_NUMBER = "4242424242424242"


@pytest.fixture
def migrated(engine: AsyncEngine) -> AsyncEngine:
    """The test database, migrated (by the session's engine fixture)."""
    return engine


@pytest.fixture
async def client_no_raise(
    app_state: AppState, session: AsyncSession
) -> AsyncIterator[httpx.AsyncClient]:
    async with _app_client(_with_session(create_app(state=app_state), session)) as http:
        yield http


FORMATTERS = [build_formatter("json"), build_formatter("text")]


def _everything_logged(records: list[logging.LogRecord]) -> str:
    parts = []
    for record in records:
        parts.append(record.getMessage())
        parts.extend(repr(value) for value in vars(record).values())
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
        parts.extend(formatter.format(record) for formatter in FORMATTERS)
    return "\n".join(parts)


async def test_full_flow_logs_no_secret(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    stripe_api: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    email = "secretive@example.com"
    assert (
        await client.post(
            "/v1/auth/register", json={"email": email, "password": PASSWORD, "role": "buyer"}
        )
    ).status_code == 201
    await client.post("/v1/auth/token", data={"username": email, "password": PASSWORD + "x"})
    tokens = (
        await client.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
    ).json()
    refreshed = (
        await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    ).json()
    headers = {"Authorization": f"Bearer {refreshed['access_token']}"}

    vendor = await make_vendor(session)
    listing = await make_listing(session, vendor, stock=5)
    body = {
        "items": [{"listing_id": str(listing.id), "quantity": 1}],
        # A client that wrongly puts card data in a free-text field: it must not be logged.
        "shipping": {
            "name": f"Card {CARD_NUMBER}",
            "address": {"line1": "1 Main St", "city": "Springfield", "country": "US"},
        },
    }
    # Stripe rejects the first attempt (logged as a warning with Stripe's details)...
    intents = stripe_api.post("/v1/payment_intents").mock(
        return_value=stripe_error(400, code="parameter_invalid", param="amount")
    )
    rejected = await client.post("/v1/buyer/orders", json=body, headers=headers)
    assert rejected.status_code == 502
    # ...and accepts the second.
    intents.mock(side_effect=create_intent_handler)
    created = await client.post("/v1/buyer/orders", json=body, headers=headers)
    assert created.status_code == 201, created.text
    checkout = created.json()
    client_secret = checkout["client_secret"]
    assert client_secret

    payload = event_body(
        event(
            "payment_intent.succeeded",
            {
                "id": "pi_logged",
                "object": "payment_intent",
                "status": "succeeded",
                "amount": checkout["amount"],
                "currency": "usd",
                "metadata": {"payment_id": checkout["payment_id"]},
                "latest_charge": "ch_logged",
                "client_secret": client_secret,
            },
        )
    )
    webhook = await client.post(
        "/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": sign(payload), "Content-Type": "application/json"},
    )
    assert webhook.status_code == 200
    stale = await client.post(
        "/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": sign(payload, timestamp=int(time.time()) - 3600)},
    )
    assert stale.status_code == 400

    logged = _everything_logged(caplog.records)
    assert "request" in logged  # the access log did run: the search below is not vacuous
    secrets = {
        "password": PASSWORD,
        "access token": tokens["access_token"],
        "refreshed access token": refreshed["access_token"],
        "refresh token": tokens["refresh_token"],
        "rotated refresh token": refreshed["refresh_token"],
        "client secret": client_secret,
        "card number": CARD_NUMBER,
        "stripe secret key": settings.stripe_secret_key.get_secret_value(),  # type: ignore[union-attr]
        "webhook secret": WEBHOOK_SECRET,
        "jwt secret": settings.jwt_secret.get_secret_value(),
        "signature": sign(payload).split("v1=")[1][:16],
    }
    leaked = [name for name, value in secrets.items() if value in logged]
    assert leaked == []


# --- the error paths ------------------------------------------------------------------------------
# Secrets planted where an error path could pick them up: in a failing statement's parameters and
# in a database error's own message, in webhook payloads, in Stripe's error messages.
ARGON2_HASH = "$argon2id$v=19$m=65536,t=3,p=4$cGxhbnRlZHNhbHQ$cGxhbnRlZGhhc2h2YWx1ZQ"
CLIENT_SECRET = "pi_3PlantedIntent_secret_PlantedSecret0123"
EMAIL_BODY = "Your golden widget has shipped; track it with code PLANTED-TRACKING-77"
STRIPE_KEY_IN_MESSAGE = "sk_live_PlantedKeyMaterial0123456789"
PLANTED = {
    "argon2 hash": "$argon2",
    "client secret": CLIENT_SECRET,
    "e-mail body": "PLANTED-TRACKING-77",
    "card number": CARD_NUMBER,
    "stripe key": "PlantedKeyMaterial",
}


def _leaked(records: list[logging.LogRecord], **more: str) -> list[str]:
    logged = _everything_logged(records)
    return [name for name, value in {**PLANTED, **more}.items() if value in logged]


def _app_client(app: FastAPI) -> httpx.AsyncClient:
    # A 500 is answered by the app and its exception re-raised to the server (uvicorn logs it):
    # here it is not raised into the test, whose subject is what was logged.
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://testserver",
    )


def _with_session(app: FastAPI, session: AsyncSession) -> FastAPI:
    async def _session() -> AsyncIterator[AsyncSession]:
        yield session

    app.dependency_overrides[get_session] = _session
    return app


async def test_a_database_error_inside_a_request_logs_no_parameters_or_values(
    migrated: AsyncEngine, database_url: str, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The engine the app builds: a failing INSERT of a user logged its parameters (an argon2
    hash), and PostgreSQL's message may quote a value too."""
    caplog.set_level(logging.DEBUG)
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            transaction = await connection.begin()
            # The database refuses the insert, quoting the row's password hash in its message.
            await connection.execute(
                text(
                    "CREATE FUNCTION refuse_user_for_test() RETURNS trigger LANGUAGE plpgsql AS"
                    " $$ BEGIN RAISE EXCEPTION 'refused row with %', NEW.password_hash; END $$"
                )
            )
            await connection.execute(
                text(
                    "CREATE TRIGGER refuse_user_for_test BEFORE INSERT ON users"
                    " FOR EACH ROW EXECUTE FUNCTION refuse_user_for_test()"
                )
            )
            async with AsyncSession(
                bind=connection, join_transaction_mode="create_savepoint"
            ) as session:
                app = _with_session(create_app(state=build_state(settings, engine)), session)
                async with _app_client(app) as http:
                    response = await http.post(
                        "/v1/auth/register",
                        json={"email": "dberror@example.com", "password": PASSWORD},
                    )
            await transaction.rollback()
    finally:
        await engine.dispose()
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    logged = _everything_logged(caplog.records)
    assert "unhandled error" in logged
    # The traceback is there, with what identifies the error (PostgreSQL's RAISE)...
    assert "sqlalchemy.exc.DBAPIError: message withheld (sqlstate=P0001" in logged
    assert _leaked(caplog.records, password=PASSWORD) == []  # ...but no value


def test_every_engine_we_build_hides_statement_parameters(database_url: str) -> None:
    """The API's, the CLI's, the worker's and the webhook commands' engines all come from
    `db.create_engine`; the parameters of a failing statement never enter its message."""
    engine = create_engine(database_url)
    assert engine.sync_engine.hide_parameters is True


async def test_a_failing_webhook_handler_logs_no_payload_values(
    client_no_raise: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    async def failing_handler(session: AsyncSession, ctx: EventContext) -> None:
        # A handler that fails on a value of the payload: the database quotes it in its error.
        await session.execute(
            text("SELECT CAST(:value AS integer)"), {"value": ctx.object["client_secret"]}
        )

    monkeypatch.setitem(load_handlers(), "payment_intent.succeeded", failing_handler)
    payload = event_body(
        event(
            "payment_intent.succeeded",
            {
                "id": "pi_planted",
                "object": "payment_intent",
                "client_secret": CLIENT_SECRET,
                "description": EMAIL_BODY,
                "metadata": {"note": CARD_NUMBER},
            },
        )
    )
    response = await client_no_raise.post(
        "/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": sign(payload), "Content-Type": "application/json"},
    )
    assert response.status_code < 500
    logged = _everything_logged(caplog.records)
    assert "stripe event handler failed" in logged  # the failure was logged...
    assert _leaked(caplog.records) == []  # ...without the payload's values


def _poison_events() -> list[bytes]:
    planted = {
        "id": "pi_poison",
        "object": "payment_intent",
        "client_secret": CLIENT_SECRET,
        "description": EMAIL_BODY,
        "metadata": {"card": CARD_NUMBER},
    }
    # JSON nested 10,000 deep (more than Python's JSON encoder would write).
    nested = event_body(event("payment_intent.succeeded", {**planted, "deep": "DEEP"}))
    deep = nested.replace(
        b'"DEEP"', b'{"n":' * 10_000 + f'"{CLIENT_SECRET}"'.encode() + b"}" * 10_000
    )
    return [
        event_body(event("payment_intent.succeeded", {**planted, "note": "nul\u0000here"})),
        event_body(event("payment_intent.succeeded", planted, account="acct_" + "x" * 300)),
        event_body(event("payment_intent.succeeded", planted, created=10**12)),
        deep,
        event_body(event("payment_intent.succeeded", planted))[:-1],  # cut short: not JSON
    ]


async def test_poison_webhook_events_log_no_payload(
    client_no_raise: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    statuses = []
    for payload in _poison_events():
        response = await client_no_raise.post(
            "/webhooks/stripe",
            content=payload,
            headers={"Stripe-Signature": sign(payload), "Content-Type": "application/json"},
        )
        statuses.append(response.status_code)
    assert len(statuses) == 5
    assert "request" in _everything_logged(caplog.records)
    assert _leaked(caplog.records) == []


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda m: stripe_error(400, code="parameter_invalid", message=m), id="400"),
        pytest.param(
            lambda m: stripe_error(402, type_="card_error", code="card_declined", message=m),
            id="402",
        ),
        pytest.param(
            lambda m: stripe_error(401, type_="invalid_request_error", message=m), id="401"
        ),
        pytest.param(lambda m: stripe_error(403, message=m), id="403"),
        pytest.param(lambda m: stripe_error(500, type_="api_error", message=m), id="500"),
        pytest.param(lambda m: httpx.Response(500, text=m), id="500-not-json"),
    ],
)
async def test_stripe_errors_log_no_secret(
    client_no_raise: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
    answer: Callable[[str], httpx.Response],
) -> None:
    caplog.set_level(logging.DEBUG)
    vendor = await make_vendor(session)
    listing = await make_listing(session, vendor, stock=5)
    # Stripe's messages may quote what it was sent: here, planted secrets.
    message = f"Bad {CLIENT_SECRET} {CARD_NUMBER} {STRIPE_KEY_IN_MESSAGE} {EMAIL_BODY}"
    stripe_api.post("/v1/payment_intents").mock(return_value=answer(message))
    response = await client_no_raise.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing.id), "quantity": 1}]},
        headers=buyer.headers,
    )
    assert response.status_code >= 400
    assert response.status_code != 500
    assert _leaked(caplog.records) == []


def test_a_logged_exception_keeps_its_traceback_and_chain_but_not_quoted_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """pydantic quotes the input (`input_value=…`); the chain and the frames stay readable, and
    the exception itself (re-raised elsewhere) is left untouched."""
    install_safe_exception_logging()

    class Card(BaseModel):
        number: int

    try:
        try:
            Card.model_validate({"number": f"{CARD_NUMBER}x"})
        except ValidationError as exc:
            raise RuntimeError("could not read the card") from exc
    except RuntimeError as exc:
        original = exc
        logging.getLogger("tests.redaction").exception("failed")
    logged = _everything_logged(caplog.records)
    assert CARD_NUMBER not in logged
    assert "pydantic_core._pydantic_core.ValidationError: message withheld (number: " in logged
    assert "RuntimeError: could not read the card" in logged
    assert "test_a_logged_exception_keeps_its_traceback" in logged  # the frames
    assert CARD_NUMBER in str(original.__cause__)  # the live exception is unchanged


def test_a_refused_response_is_never_quoted_in_a_log() -> None:
    """FastAPI's ResponseValidationError quotes the whole response it refused (a token, say)."""
    import traceback

    from fastapi.exceptions import ResponseValidationError

    from marketplace_api.observability import safe_exc_info

    secret = "tok_" + "9" * 24
    exc = ResponseValidationError(
        [{"type": "missing", "loc": ("response", "user"), "msg": "x", "input": {"t": secret}}]
    )
    _, copy, _ = safe_exc_info(exc)
    text = "".join(traceback.format_exception(copy))
    assert secret not in text
    assert "ResponseValidationError" in text
    assert "response.user: missing" in text


def test_an_exception_group_keeps_its_members_redacted() -> None:
    import traceback

    from sqlalchemy.exc import IntegrityError

    from marketplace_api.observability import safe_exc_info

    quoted = IntegrityError("INSERT …", {"email": "owner@example.com"}, Exception("dup"))
    group = ExceptionGroup("two failures", [quoted, ValueError("plain cause")])
    group.add_note("while releasing funds")
    _, copy, _ = safe_exc_info(group)
    text = "".join(traceback.format_exception(copy))
    assert "owner@example.com" not in text
    assert "plain cause" in text  # the members, not just their count
    assert "IntegrityError" in text
    assert "while releasing funds" in text
