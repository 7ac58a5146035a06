"""Tampered, expired, wrong-algorithm and wrong-type tokens are all refused with 401."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import pytest

from marketplace_api.config import Settings
from tests.conftest import AuthUser


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(user: AuthUser, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": str(user.id),
        "role": user.user.role.value,
        "typ": "access",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return claims


@pytest.mark.parametrize(
    "case", ["tampered", "expired", "alg_none", "other_alg", "other_secret", "refresh_typ"]
)
async def test_bad_access_tokens_are_refused(
    client: httpx.AsyncClient, buyer: AuthUser, settings: Settings, case: str
) -> None:
    secret = settings.jwt_secret.get_secret_value()
    if case == "tampered":
        header, _, signature = buyer.token.split(".")
        token = ".".join([header, _b64(_claims(buyer, role="admin")), signature])
    elif case == "expired":
        token = jwt.encode(_claims(buyer, exp=int(time.time()) - 5), secret, algorithm="HS256")
    elif case == "alg_none":
        token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(buyer))}."
    elif case == "other_alg":  # same secret, an algorithm the server does not accept
        token = jwt.encode(_claims(buyer), secret, algorithm="HS512")
    elif case == "other_secret":
        token = jwt.encode(_claims(buyer), "another-secret-another-secret-00", algorithm="HS256")
    else:
        token = jwt.encode(_claims(buyer, typ="refresh"), secret, algorithm="HS256")
    response = await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
