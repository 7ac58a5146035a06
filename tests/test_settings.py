from __future__ import annotations

import pytest
from pydantic import ValidationError

from marketplace_api.config import ChargeType, Settings

PLATFORM_WHSEC = "whsec_" + "Pl4tf0rmS1gn1ngS3cr3tV4lu3xyz0123"
CONNECT_WHSEC = "whsec_" + "C0nn3ctS1gn1ngS3cr3tV4lu3abc4567"
GOOD_PRODUCTION = {
    "environment": "production",
    "database_url": "postgresql+asyncpg://app@db/marketplace",
    "jwt_secret": "Zq8vN3kLmR1tXw7yBc5dHf2gJp9sUe4a6oIi0",
    "stripe_secret_key": "sk_live_51RealisticKey0123456789",
    "stripe_webhook_secrets": f"{PLATFORM_WHSEC},{CONNECT_WHSEC}",
    "frontend_url": "https://shop.example",
    "cors_origins": "https://shop.example",
}


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_production_accepts_real_secrets() -> None:
    settings = _settings(**GOOD_PRODUCTION)
    assert [s.get_secret_value() for s in settings.stripe_webhook_secrets] == [
        PLATFORM_WHSEC,
        CONNECT_WHSEC,
    ]


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"jwt_secret": "dev-secret-change-me"}, "JWT_SECRET"),
        ({"jwt_secret": "short"}, "JWT_SECRET"),
        ({"stripe_secret_key": ""}, "STRIPE_SECRET_KEY"),
        ({"stripe_secret_key": "sk_test_placeholder"}, "STRIPE_SECRET_KEY"),
        ({"stripe_webhook_secrets": ""}, "STRIPE_WEBHOOK_SECRETS"),
        ({"database_url": None}, "DATABASE_URL"),
        # Low-entropy secrets: long enough, but typed or padded, not drawn at random.
        ({"jwt_secret": "a" * 32}, "JWT_SECRET"),
        ({"jwt_secret": "x" * 48}, "JWT_SECRET"),
        ({"jwt_secret": "abcdefghij" * 4}, "JWT_SECRET"),
        ({"jwt_secret": "abababababababababababababababab"}, "JWT_SECRET"),
        # Stripe test-mode keys, without the opt-in, and keys that are not secret keys at all.
        ({"stripe_secret_key": "sk_test_51AbcDefGhiJklMnoPqr"}, "STRIPE_SECRET_KEY"),
        ({"stripe_secret_key": "rk_test_51AbcDefGhiJklMnoPqr"}, "STRIPE_SECRET_KEY"),
        ({"stripe_secret_key": "pk_live_51AbcDefGhiJklMnoPqr"}, "STRIPE_SECRET_KEY"),
        ({"stripe_secret_key": "whatever"}, "STRIPE_SECRET_KEY"),
        # Webhook secrets that are not Stripe signing secrets.
        ({"stripe_webhook_secrets": "x"}, "STRIPE_WEBHOOK_SECRETS"),
        ({"stripe_webhook_secrets": f"{PLATFORM_WHSEC},whsec_short"}, "STRIPE_WEBHOOK_SECRETS"),
        ({"stripe_webhook_secrets": "a" * 40}, "STRIPE_WEBHOOK_SECRETS"),
        # A JWT algorithm other than HMAC (refused in every environment, see below).
        ({"jwt_algorithm": "none"}, "JWT_ALGORITHM"),
        ({"jwt_algorithm": "RS256"}, "JWT_ALGORITHM"),
        # CORS open to every origin.
        ({"cors_origins": "*"}, "CORS_ORIGINS"),
        ({"cors_origins": "https://shop.example,*"}, "CORS_ORIGINS"),
        # Plain-http Stripe stand-ins and return URLs.
        ({"stripe_api_base": "http://localhost:12111"}, "STRIPE_API_BASE"),
        ({"stripe_connect_api_base": "http://localhost:12111"}, "STRIPE_CONNECT_API_BASE"),
        ({"frontend_url": "http://shop.example"}, "FRONTEND_URL"),
        # A guessable metrics token.
        ({"metrics_token": "secret"}, "METRICS_TOKEN"),
        ({"metrics_token": "short-token"}, "METRICS_TOKEN"),
        # Trusting every peer: the client writes the left-most X-Forwarded-For entry.
        ({"trusted_proxies": "*"}, "TRUSTED_PROXIES"),
    ],
)
def test_production_refuses_missing_or_placeholder_secret(
    override: dict[str, object], named: str
) -> None:
    with pytest.raises(ValidationError) as info:
        _settings(**{**GOOD_PRODUCTION, **override})
    assert named in str(info.value)


def test_production_names_every_problem_at_once() -> None:
    with pytest.raises(ValidationError) as info:
        _settings(environment="production")
    message = str(info.value)
    for name in ("JWT_SECRET", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRETS", "DATABASE_URL"):
        assert name in message


def test_development_runs_without_stripe() -> None:
    settings = _settings()
    assert settings.stripe_enabled is False
    assert settings.default_charge_type is ChargeType.destination


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("PLATFORM_FEE_BPS", "250")
    monkeypatch.setenv("DEFAULT_CHARGE_TYPE", "separate")
    settings = _settings()
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.platform_fee_bps == 250
    assert settings.default_charge_type is ChargeType.separate


def test_fee_out_of_range_is_refused() -> None:
    with pytest.raises(ValidationError):
        _settings(platform_fee_bps=10_001)


def test_production_refusal_does_not_print_the_secrets_it_was_given() -> None:
    with pytest.raises(ValidationError) as info:
        _settings(**{**GOOD_PRODUCTION, "stripe_secret_key": "sk_test_51VisibleKeyMaterial"})
    assert "STRIPE_SECRET_KEY" in str(info.value)
    assert "VisibleKeyMaterial" not in str(info.value)
    assert GOOD_PRODUCTION["jwt_secret"] not in str(info.value)


def test_production_accepts_a_test_key_with_the_explicit_opt_in() -> None:
    settings = _settings(
        **{
            **GOOD_PRODUCTION,
            "stripe_secret_key": "sk_test_51AbcDefGhiJklMnoPqr",
            "stripe_allow_test_keys": True,
        }
    )
    assert settings.stripe_enabled


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_hmac_jwt_algorithms_are_accepted(algorithm: str) -> None:
    assert _settings(jwt_algorithm=algorithm).jwt_algorithm == algorithm


@pytest.mark.parametrize("environment", ["development", "test"])
@pytest.mark.parametrize("algorithm", ["none", "RS256", "ES256", "hs256"])
def test_a_non_hmac_jwt_algorithm_is_refused_in_every_environment(
    environment: str, algorithm: str
) -> None:
    with pytest.raises(ValidationError) as info:
        _settings(environment=environment, jwt_algorithm=algorithm)
    assert "JWT_ALGORITHM" in str(info.value)


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_and_test_start_with_the_defaults(environment: str) -> None:
    settings = _settings(environment=environment)
    assert settings.docs_on is True
    assert settings.trusted_proxies == []


def test_docs_are_off_by_default_in_production_and_can_be_turned_on() -> None:
    assert _settings(**GOOD_PRODUCTION).docs_on is False
    assert _settings(**GOOD_PRODUCTION, docs_enabled=True).docs_on is True
    assert _settings(docs_enabled=False).docs_on is False


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("10.0.0.0/8", ["10.0.0.0/8"]),
        # Host bits set: uvicorn would match `10.0.0.1/8` literally, i.e. never.
        ("10.0.0.1/8", ["10.0.0.0/8"]),
        ("192.0.2.10, 2001:db8::/32", ["192.0.2.10", "2001:db8::/32"]),
    ],
)
def test_trusted_proxies_are_normalised_to_networks(given: str, kept: list[str]) -> None:
    assert _settings(trusted_proxies=given).trusted_proxies == kept


@pytest.mark.parametrize("given", ["lb.internal", "10.0.0.0/33", "10.0.0.0-10.0.0.9"])
def test_trusted_proxies_refuse_what_is_not_an_address(given: str) -> None:
    with pytest.raises(ValidationError, match="TRUSTED_PROXIES"):
        _settings(trusted_proxies=given)
