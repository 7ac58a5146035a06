from __future__ import annotations

import pytest
from pydantic import ValidationError

from marketplace_api.config import ChargeType, Settings

GOOD_PRODUCTION = {
    "environment": "production",
    "database_url": "postgresql+asyncpg://app@db/marketplace",
    "jwt_secret": "x" * 48,
    "stripe_secret_key": "sk_live_realistic_key",
    "stripe_webhook_secrets": "whsec_platform,whsec_connect",
}


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_production_accepts_real_secrets() -> None:
    settings = _settings(**GOOD_PRODUCTION)
    assert [s.get_secret_value() for s in settings.stripe_webhook_secrets] == [
        "whsec_platform",
        "whsec_connect",
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
