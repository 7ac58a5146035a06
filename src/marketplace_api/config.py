"""Settings: one `Settings` object from the environment and `.env`, cached by `get_settings()`.

Every variable is documented in `.env.example`. In production the service refuses to start when a
secret is missing or still a placeholder, naming each offending variable.
"""

from __future__ import annotations

import enum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Environment(enum.StrEnum):
    development = "development"
    test = "test"
    production = "production"


class ChargeType(enum.StrEnum):
    """The three Stripe Connect charge types (see README, "Money flows")."""

    destination = "destination"
    direct = "direct"
    separate = "separate"  # separate charges and transfers: hold, then release


# Values that mean "somebody copied .env.example and forgot to change it".
PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "secret", "dev-secret-change-me", "sk_test_placeholder"}
)
DEV_JWT_SECRET = "dev-secret-change-me"  # noqa: S105 - refused in production, see below


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
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

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
    rate_limit_register: str = "5/minute"
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

    # --- logging --------------------------------------------------------------------------
    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> object:
        return _split_csv(value)

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
        key = self.stripe_secret_key.get_secret_value() if self.stripe_secret_key else ""
        if key in PLACEHOLDER_SECRETS:
            problems.append("STRIPE_SECRET_KEY is missing or a placeholder")
        if not self.stripe_webhook_secrets or any(
            s.get_secret_value() in PLACEHOLDER_SECRETS for s in self.stripe_webhook_secrets
        ):
            problems.append("STRIPE_WEBHOOK_SECRETS is missing or contains a placeholder")
        if not self.database_url:
            problems.append("DATABASE_URL is required in production (no embedded database)")
        if not self.refresh_cookie_secure:
            problems.append("REFRESH_COOKIE_SECURE=false is for http:// development only")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    @property
    def stripe_enabled(self) -> bool:
        return self.stripe_secret_key is not None


@lru_cache
def get_settings() -> Settings:
    return Settings()
