"""Password hashing (argon2 via pwdlib) and JWT access tokens (pyjwt)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from pwdlib import PasswordHash

from marketplace_api.accounts.models import Role
from marketplace_api.config import Settings

_password_hash = PasswordHash.recommended()

# A hash to verify against when the user does not exist, so a login takes the same time
# whether or not the e-mail is registered.
_DUMMY_HASH = _password_hash.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _password_hash.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    if password_hash is None:
        _password_hash.verify(password, _DUMMY_HASH)
        return False
    return _password_hash.verify(password, password_hash)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    role: Role


class InvalidToken(Exception):
    pass


def create_access_token(settings: Settings, user_id: uuid.UUID, role: Role) -> str:
    now = datetime.now(UTC)
    payload = {
        "sub": str(user_id),
        "role": role.value,
        "typ": "access",
        "iat": now,
        "exp": now + timedelta(seconds=settings.access_token_ttl_seconds),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(
        payload, settings.jwt_secret.get_secret_value(), algorithm=settings.jwt_algorithm
    )


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    try:
        payload = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            # Only the configured algorithm: "none" and algorithm confusion are refused.
            algorithms=[settings.jwt_algorithm],
            options={"require": ["sub", "exp", "iat", "typ", "role"]},
        )
        if payload["typ"] != "access":
            raise InvalidToken("not an access token")
        return AccessClaims(user_id=uuid.UUID(payload["sub"]), role=Role(payload["role"]))
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise InvalidToken(str(exc)) from exc


def new_refresh_token() -> tuple[str, str]:
    """A random opaque refresh token and the SHA-256 we store for it."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
