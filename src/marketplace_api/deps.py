"""Typed FastAPI dependencies: the DB session, settings, the Stripe gateway and the current user.

Every dependency is `async def`: FastAPI runs plain `def` dependencies in a thread pool, a thread
hop per dependency per request that showed up in the webhook benchmark's profile.

`CurrentBuyer`, `CurrentVendor` and `CurrentAdmin` answer 401 without a valid token and 403 for the
wrong role; resource dependencies built on them answer 404 for another user's resource.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from marketplace_api.accounts.exceptions import InvalidAccessToken, RoleNotAllowed
from marketplace_api.accounts.models import Role, User
from marketplace_api.accounts.security import InvalidToken, decode_access_token
from marketplace_api.config import Settings
from marketplace_api.errors import Unauthorized
from marketplace_api.payments.stripe_gateway import StripeGateway, StripeNotConfigured
from marketplace_api.ratelimit import RateLimiter


@dataclass
class AppState:
    """What the app holds for its lifetime (built in the lifespan, see main.py)."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    stripe: StripeGateway | None
    rate_limiter: RateLimiter = field(default_factory=RateLimiter)


async def get_app_state(request: Request) -> AppState:
    state: AppState = request.app.state.marketplace
    return state


AppStateDep = Annotated[AppState, Depends(get_app_state)]


async def get_settings_dep(state: AppStateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_session(state: AppStateDep) -> AsyncIterator[AsyncSession]:
    # Services commit explicitly; nothing is committed after the response (FastAPI >= 0.118 runs
    # post-yield code after sending it), and whatever is left uncommitted is rolled back here.
    async with state.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_stripe_gateway(state: AppStateDep) -> StripeGateway:
    if state.stripe is None:
        raise StripeNotConfigured()
    return state.stripe


StripeGatewayDep = Annotated[StripeGateway, Depends(get_stripe_gateway)]

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False)


async def get_current_user(
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    if not token:
        raise Unauthorized("Send an access token as `Authorization: Bearer <token>`.")
    try:
        claims = decode_access_token(settings, token)
    except InvalidToken as exc:
        raise InvalidAccessToken() from exc
    user = await session.get(User, claims.user_id)
    if user is None or not user.is_active:
        raise InvalidAccessToken()
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_role(role: Role) -> Any:
    """`Depends` that answers 401 without a valid token and 403 for any other role.

    Used on each audience's router (`dependencies=[require_role(Role.buyer)]`) and in the
    `CurrentBuyer`/`CurrentVendor`/`CurrentAdmin` aliases.
    """

    async def dependency(user: CurrentUser) -> User:
        if user.role is not role:
            raise RoleNotAllowed(f"This endpoint is for {role.value}s.")
        return user

    return Depends(dependency)


CurrentBuyer = Annotated[User, require_role(Role.buyer)]
CurrentVendor = Annotated[User, require_role(Role.vendor)]
CurrentAdmin = Annotated[User, require_role(Role.admin)]


def rate_limit(scope: str) -> Any:
    """`Depends` counting the request against `settings.rate_limit_<scope>`.

    The key is the signed-in user when the route has one (checkout, refunds), else the client IP
    (login, register). Declare it on the route: `dependencies=[rate_limit("login")]`.
    """

    async def dependency(request: Request, state: AppStateDep) -> None:
        settings = state.settings
        if not settings.rate_limit_enabled:
            return
        limit: str = getattr(settings, f"rate_limit_{scope}")
        token = await oauth2_scheme(request)
        key = _user_key(settings, token) or f"ip:{request.client.host if request.client else '-'}"
        await state.rate_limiter.hit(scope, key, limit)

    return Depends(dependency)


def _user_key(settings: Settings, token: str | None) -> str | None:
    if not token:
        return None
    try:
        return f"user:{decode_access_token(settings, token).user_id}"
    except InvalidToken:
        return None
