"""Registration, login and the rotating refresh-token family."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts import security
from marketplace_api.accounts.exceptions import (
    EmailAlreadyRegistered,
    InvalidCredentials,
    InvalidRefreshToken,
)
from marketplace_api.accounts.models import RefreshToken, Role, User
from marketplace_api.accounts.schemas import TokenPair
from marketplace_api.config import Settings


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    role: Role,
    full_name: str | None = None,
) -> User:
    user = User(
        email=normalize_email(email),
        password_hash=security.hash_password(password),
        role=role,
        full_name=full_name,
    )
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise EmailAlreadyRegistered(f"{user.email} already has an account.") from exc
    return user


async def authenticate(session: AsyncSession, *, email: str, password: str) -> User:
    user = await session.scalar(select(User).where(User.email == normalize_email(email)))
    password_ok = security.verify_password(password, user.password_hash if user else None)
    if user is None or not password_ok or not user.is_active:
        raise InvalidCredentials()
    return user


async def issue_tokens(
    session: AsyncSession, settings: Settings, user: User, *, family_id: uuid.UUID | None = None
) -> TokenPair:
    token, token_hash = security.new_refresh_token()
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id or uuid.uuid4(),
            token_hash=token_hash,
            expires_at=datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    await session.commit()
    return TokenPair(
        access_token=security.create_access_token(settings, user.id, user.role),
        expires_in=settings.access_token_ttl_seconds,
        refresh_token=token,
    )


async def rotate_refresh_token(session: AsyncSession, settings: Settings, token: str) -> TokenPair:
    """Exchange a refresh token for a new pair. Each token works once.

    The token is consumed with a conditional UPDATE, so two concurrent refreshes with the same token
    cannot both succeed. Presenting a token that was already used revokes its whole family: either
    the client or an attacker holds a stolen copy, and both must log in again.
    """
    now = datetime.now(UTC)
    token_hash = security.hash_refresh_token(token)
    consumed = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == token_hash,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(RefreshToken.user_id, RefreshToken.family_id)
    )
    row = consumed.one_or_none()
    if row is None:
        await _revoke_family_of_reused_token(session, token_hash, now)
        raise InvalidRefreshToken()
    user = await session.get(User, row.user_id)
    if user is None or not user.is_active:
        await session.rollback()
        raise InvalidRefreshToken()
    return await issue_tokens(session, settings, user, family_id=row.family_id)


async def _revoke_family_of_reused_token(
    session: AsyncSession, token_hash: str, now: datetime
) -> None:
    family_id = await session.scalar(
        select(RefreshToken.family_id).where(
            RefreshToken.token_hash == token_hash, RefreshToken.used_at.is_not(None)
        )
    )
    await _revoke_family(session, family_id, now)
    await session.commit()


async def _revoke_family(session: AsyncSession, family_id: uuid.UUID | None, now: datetime) -> None:
    """Revoke every token of a family still in force (none when the family is unknown)."""
    if family_id is not None:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )


async def revoke_refresh_token(session: AsyncSession, token: str) -> None:
    """Log out: revoke the token's whole family (idempotent, unknown tokens are ignored)."""
    now = datetime.now(UTC)
    family_id = await session.scalar(
        select(RefreshToken.family_id).where(
            RefreshToken.token_hash == security.hash_refresh_token(token)
        )
    )
    await _revoke_family(session, family_id, now)
    await session.commit()
