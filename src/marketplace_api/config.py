"""Settings: one `Settings` object from the environment and `.env`, cached by `get_settings()`.

Every variable is documented in `.env.example`. In production the service refuses to start when a
secret is missing or still a placeholder, naming each offending variable.
"""

from __future__ import annotations

import enum
import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Environment(enum.StrEnum):
    development = "development"
    test = "test"
    production = "production"


class ChargeType(enum.StrEnum):
    """The three Stripe Connect charge types (see docs/money-flows.md)."""

    destination = "destination"
    direct = "direct"
    separate = "separate"  # separate charges and transfers: hold, then release


# Values that mean "somebody copied .env.example and forgot to change it".
PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "secret", "dev-secret-change-me", "sk_test_placeholder"}
)
DEV_JWT_SECRET = "dev-secret-change-me"  # noqa: S105 - refused in production, see below
# HMAC only: the key is our own secret. `none` would accept unsigned tokens (and made every login
# a 500), and an asymmetric name would need a key pair this service does not have.
JWT_ALGORITHMS = ("HS256", "HS384", "HS512")
# A Stripe signing secret is `whsec_` followed by (at least) 32 characters.
_WEBHOOK_SECRET_MIN_LENGTH = len("whsec_") + 24


def _split_csv(value: object) -> object:
    """Accept `a,b,c` (as written in .env files) as well as a JSON list."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            import json

            return json.loads(stripped)
        return [item.strip() for item in stripped.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # A refusal names the setting; it must not print the secrets it was given.
        hide_input_in_errors=True,
    )

    environment: Environment = Environment.development

    # --- database -------------------------------------------------------------------------
    # Unset: an embedded PostgreSQL (pgserver) is started with its data in EMBEDDED_DB_DIR.
    database_url: str | None = None
    embedded_db_dir: Path = Path(".marketplace/pgdata")
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)

    # --- background jobs (procrastinate, on the same database) -----------------------------
    # Run a job worker inside the API process. `marketplace-api serve` turns it on when
    # DATABASE_URL is unset (embedded default); production runs `marketplace-api worker`.
    run_worker_in_process: bool = False
    # Jobs one worker runs at once (`marketplace-api worker --concurrency` overrides it).
    worker_concurrency: int = Field(default=4, ge=1, le=100)

    # --- Stripe ---------------------------------------------------------------------------
    stripe_secret_key: SecretStr | None = None
    stripe_publishable_key: str | None = None
    # Signing secrets of every webhook endpoint (platform, Connect, a rotated old one).
    stripe_webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    stripe_webhook_tolerance_seconds: int = Field(default=300, ge=1)
    stripe_api_base: str = "https://api.stripe.com"
    stripe_connect_api_base: str = "https://connect.stripe.com"
    stripe_max_network_retries: int = Field(default=2, ge=0, le=10)
    stripe_timeout_seconds: float = Field(default=30.0, gt=0)
    # Production refuses a test-mode key (sk_test_/rk_test_) unless this says it is meant to
    # (a staging deployment against Stripe's test mode).
    stripe_allow_test_keys: bool = False
    # The built-in Stripe Connect simulator (stripe_simulator/): `auto` uses it in development
    # when STRIPE_SECRET_KEY and DATABASE_URL are unset (the local `make run`); `on` forces it
    # (refused in production); `off` never.
    stripe_simulator: Literal["auto", "on", "off"] = "auto"
    # Its state (accounts, payments, webhook endpoints), kept across restarts like the
    # embedded database in .marketplace/.
    stripe_simulator_state_file: Path = Path(".marketplace/stripe-simulator.json")
    # The API's base URL as a browser reaches it: the simulator's hosted pages and the webhook
    # endpoint it registers. `marketplace-api serve` sets it from --host/--port when unset.
    stripe_simulator_public_url: str = "http://127.0.0.1:8000"

    # --- auth -----------------------------------------------------------------------------
    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_algorithm: str = "HS256"
    access_token_ttl_seconds: int = Field(default=900, ge=60)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=300)
    # Refresh tokens in an HttpOnly, SameSite=Strict cookie scoped to /v1/auth instead of the JSON
    # body (refresh and logout then need the SPA's Origin and an X-Requested-With header).
    refresh_token_cookie: bool = False
    # The cookie's `Secure` flag; false only for http:// development (refused in production).
    refresh_cookie_secure: bool = True

    # --- HTTP -----------------------------------------------------------------------------
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://localhost:5173"]
    )
    frontend_url: str = "http://localhost:5173"
    max_request_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Peers whose X-Forwarded-For / X-Forwarded-Proto are believed (IPs or CIDRs, comma-separated;
    # `*` trusts every peer). Empty: forwarded headers are ignored and the client address is the
    # TCP peer, so nobody can choose the address the rate limits count.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # /docs, /redoc and /openapi.json. Unset: on in development and test, off in production.
    docs_enabled: bool | None = None
    # Strict-Transport-Security max-age, sent in production only (browsers then refuse plain http).
    hsts_max_age_seconds: int = Field(default=63_072_000, ge=0)

    # --- money ----------------------------------------------------------------------------
    platform_fee_bps: int = Field(default=1000, ge=0, le=10_000)
    default_charge_type: ChargeType = ChargeType.destination
    # Destination charges with `on_behalf_of` = the vendor: the vendor is the settlement merchant
    # (its statement descriptor and country's fees). Needs card_payments on the vendor's account.
    destination_on_behalf_of: bool = False
    reservation_ttl_seconds: int = Field(default=15 * 60, ge=60, le=24 * 3600)

    # --- after the payment: release, refunds, disputes --------------------------------------
    # Held funds (separate charges) go to the vendor this many days after shipping, unless a
    # dispute or a refund request is open.
    auto_release_days: int = Field(default=14, ge=0, le=365)
    # Destination and direct charges: a refund also refunds the platform fee, proportionally.
    refund_application_fee: bool = True
    # A lost dispute on an already-transferred separate charge reverses the vendor's share.
    reverse_transfer_on_dispute_loss: bool = True

    # --- rate limits ("N/second|minute|hour"; per client IP, or per user where signed in) -----
    # Unset: counted in each process's memory. `async+redis://host:6379/0`: shared by replicas.
    rate_limit_storage_url: str | None = None
    rate_limit_enabled: bool = True
    rate_limit_login: str = "10/minute"
    # Per target e-mail, whatever address the attempts come from (a distributed guess).
    rate_limit_login_email: str = "20/hour"
    rate_limit_register: str = "5/minute"
    rate_limit_refresh: str = "30/minute"
    rate_limit_checkout: str = "30/minute"
    rate_limit_refund_request: str = "10/minute"

    # --- metrics ----------------------------------------------------------------------------
    # GET /metrics is disabled unless set; Prometheus sends it as a bearer token.
    metrics_token: SecretStr | None = None

    # --- email notifications and live order status -------------------------------------------
    # smtp://user:pass@host:587 (STARTTLS when the server offers it) or smtps://user:pass@host:465
    # (TLS). Unset: email is disabled; notifications are recorded as `skipped`, never sent.
    smtp_url: SecretStr | None = None
    email_from: str = "Marketplace <no-reply@marketplace.example>"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    # Locale of amounts and dates in emails (babel), e.g. en_US, de_DE, fr_FR, ja_JP.
    email_locale: str = "en_US"
    # Server-Sent Events (order status): seconds between `: ping` comments on an idle stream.
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)

    # --- retention (the daily `prune_history` job deletes rows older than this, in batches) ---
    # Processed or ignored Stripe events. At least 7 days: Stripe redelivers an event for up to 3.
    retention_stripe_events_days: int = Field(default=90, ge=7, le=3650)
    # Sent or skipped notifications (queued and failed ones are kept).
    retention_notifications_days: int = Field(default=180, ge=7, le=3650)
    # Order status history: the SSE replay window (`Last-Event-ID`). An order's newest event is
    # always kept, so a client reconnecting after a longer gap still gets the current state.
    retention_order_events_days: int = Field(default=30, ge=1, le=3650)
    retention_batch_size: int = Field(default=1000, ge=1, le=100_000)

    # --- logging --------------------------------------------------------------------------
    log_level: str = "INFO"
    # `text`: one readable line per event, for a person at a terminal; `json`: one JSON object
    # per line, for a log collector. Unset: `text` in development, `json` everywhere else.
    log_format: Literal["json", "text"] | None = None

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        # uvicorn matches these literally: `10.0.0.1/8` or a host name would never match, and
        # every client would then be counted as the load balancer's one address.
        networks = []
        for entry in value:
            if entry == "*":
                networks.append(entry)
                continue
            try:
                if "/" in entry:
                    networks.append(str(ipaddress.ip_network(entry, strict=False)))
                else:
                    networks.append(str(ipaddress.ip_address(entry)))
            except ValueError:
                raise ValueError(
                    "TRUSTED_PROXIES must list IP addresses or CIDR networks (or `*`)"
                ) from None
        return networks

    @field_validator("jwt_algorithm")
    @classmethod
    def _hmac_algorithm_only(cls, value: str) -> str:
        # Refused in every environment: a wrong algorithm breaks every login, not just security.
        if value not in JWT_ALGORITHMS:
            raise ValueError(f"JWT_ALGORITHM must be one of {', '.join(JWT_ALGORITHMS)}")
        return value

    @field_validator("stripe_webhook_secrets", mode="before")
    @classmethod
    def _parse_secrets(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("stripe_secret_key", "smtp_url", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _refuse_placeholder_secrets_in_production(self) -> Settings:
        if self.environment is not Environment.production:
            return self
        problems: list[str] = []
        if self.jwt_secret.get_secret_value() in PLACEHOLDER_SECRETS:
            problems.append("JWT_SECRET is missing or a placeholder")
        elif len(self.jwt_secret.get_secret_value()) < 32:
            problems.append("JWT_SECRET must be at least 32 characters")
        elif _low_entropy(self.jwt_secret.get_secret_value()):
            problems.append(
                "JWT_SECRET is low-entropy (too few distinct characters or a repeated pattern);"
                " generate one with `python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        key = self.stripe_secret_key.get_secret_value() if self.stripe_secret_key else ""
        if key in PLACEHOLDER_SECRETS:
            problems.append("STRIPE_SECRET_KEY is missing or a placeholder")
        if not self.stripe_webhook_secrets or any(
            s.get_secret_value() in PLACEHOLDER_SECRETS for s in self.stripe_webhook_secrets
        ):
            problems.append("STRIPE_WEBHOOK_SECRETS is missing or contains a placeholder")
        if not self.database_url:
            problems.append("DATABASE_URL is required in production (no embedded database)")
        problems.extend(self._unsafe_in_production())
        if self.stripe_simulator == "on":
            problems.append("STRIPE_SIMULATOR=on is for development only (use off or auto)")
        if not self.refresh_cookie_secure:
            problems.append("REFRESH_COOKIE_SECURE=false is for http:// development only")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    def _unsafe_in_production(self) -> list[str]:
        """Settings that work but would be unsafe with real money and real users."""
        problems: list[str] = []
        key = self.stripe_secret_key.get_secret_value() if self.stripe_secret_key else ""
        if key and key not in PLACEHOLDER_SECRETS:
            if key.startswith(("sk_test_", "rk_test_")):
                if not self.stripe_allow_test_keys:
                    problems.append(
                        "STRIPE_SECRET_KEY is a test-mode key; set STRIPE_ALLOW_TEST_KEYS=true"
                        " if this deployment is meant to run against Stripe's test mode"
                    )
            elif not key.startswith(("sk_live_", "rk_live_")):
                problems.append(
                    "STRIPE_SECRET_KEY is not a Stripe secret or restricted key"
                    " (sk_live_…/rk_live_…)"
                )
        bad_webhook_secrets = [
            s
            for s in self.stripe_webhook_secrets
            if s.get_secret_value() not in PLACEHOLDER_SECRETS
            and not _plausible_webhook_secret(s.get_secret_value())
        ]
        if bad_webhook_secrets:
            problems.append(
                f"STRIPE_WEBHOOK_SECRETS: {len(bad_webhook_secrets)} entry(ies) not a Stripe"
                " signing secret (whsec_ followed by at least 24 characters)"
            )
        if "*" in self.trusted_proxies:
            # uvicorn then believes the left-most X-Forwarded-For entry, which the client writes.
            problems.append("TRUSTED_PROXIES must list the load balancers' addresses, not `*`")
        if any("*" in origin for origin in self.cors_origins):
            problems.append("CORS_ORIGINS must list the SPA's origins, not `*`")
        for name, url in (
            ("STRIPE_API_BASE", self.stripe_api_base),
            ("STRIPE_CONNECT_API_BASE", self.stripe_connect_api_base),
            ("FRONTEND_URL", self.frontend_url),
        ):
            if not url.startswith("https://"):
                problems.append(f"{name} must be an https:// URL in production")
        if self.metrics_token is not None and (
            len(self.metrics_token.get_secret_value()) < 16
            or self.metrics_token.get_secret_value() in PLACEHOLDER_SECRETS
        ):
            problems.append("METRICS_TOKEN must be at least 16 characters")
        return problems

    @property
    def docs_on(self) -> bool:
        """Whether /docs, /redoc and /openapi.json are served."""
        if self.docs_enabled is not None:
            return self.docs_enabled
        return self.environment is not Environment.production

    @property
    def log_json(self) -> bool:
        """Whether logs are JSON lines (LOG_FORMAT, or the environment's default)."""
        if self.log_format is not None:
            return self.log_format == "json"
        return self.environment is not Environment.development

    @property
    def stripe_enabled(self) -> bool:
        return self.stripe_secret_key is not None

    @property
    def use_stripe_simulator(self) -> bool:
        """Run against the built-in Stripe simulator instead of Stripe (never in production)."""
        if self.environment is Environment.production or self.stripe_simulator == "off":
            return False
        if self.stripe_simulator == "on":
            return True
        # `auto` only on the local, embedded-database setup of `make run`: a deployment that
        # merely forgot ENVIRONMENT and STRIPE_SECRET_KEY must answer 503, not take fake
        # payments.
        return (
            self.environment is Environment.development
            and self.stripe_secret_key is None
            and self.database_url is None
        )


def _plausible_webhook_secret(secret: str) -> bool:
    return secret.startswith("whsec_") and len(secret) >= _WEBHOOK_SECRET_MIN_LENGTH


def _low_entropy(secret: str) -> bool:
    """A key a person typed or padded (`aaaa…`, `abcabc…`), not one drawn at random: too few
    distinct characters, or one short unit repeated. A random 32-character key of any common
    alphabet (hex, base64) has well over 10 distinct characters."""
    if len(set(secret)) < 10:
        return True
    return any(
        len(secret) % size == 0 and secret == secret[:size] * (len(secret) // size)
        for size in range(1, len(secret) // 2 + 1)
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
