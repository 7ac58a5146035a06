"""Typed FastAPI dependencies: the DB session, settings, the Stripe gateway and the current user.

Every dependency is `async def`: FastAPI runs plain `def` dependencies in a thread pool, a thread
hop per dependency per request that showed up in the webhook benchmark's profile.

`CurrentBuyer`, `CurrentVendorUser` and `CurrentAdmin` answer 401 without a valid token and 403 for
the wrong role; `CurrentVendor` is the vendor row of the vendor user (409 before the profile
exists); resource dependencies built on them answer 404 for another user's resource.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from marketplace_api.accounts.exceptions import InvalidAccessToken, RoleNotAllowed
from marketplace_api.accounts.models import Role, User
from marketplace_api.accounts.security import InvalidToken, decode_access_token
from marketplace_api.accounts.service import normalize_email
from marketplace_api.config import Settings
from marketplace_api.errors import Unauthorized
from marketplace_api.integrations.stripe import StripeGateway, StripeNotConfigured
from marketplace_api.ratelimit import RateLimiter
from marketplace_api.vendors.models import Vendor
from marketplace_api.vendors.queries import vendor_id_of
from marketplace_api.vendors.service import require_vendor


@dataclass
class AppState:
    """What the app holds for its lifetime (built in the lifespan, see main.py)."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    stripe: StripeGateway | None
    rate_limiter: RateLimiter = field(default_factory=RateLimiter)


def _app_state(request: Request) -> AppState:
    state: AppState = request.app.state.marketplace
    return state


async def get_app_state(request: Request) -> AppState:
    return _app_state(request)


AppStateDep = Annotated[AppState, Depends(get_app_state)]

# The dependencies below read the app state from the request rather than through `AppStateDep`:
# FastAPI walks a dependency's whole sub-tree again wherever it appears, even when its value is
# cached, and the current user alone appears three times on a buyer's checkout.


async def get_settings_dep(request: Request) -> Settings:
    return _app_state(request).settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    # Services commit explicitly; nothing is committed after the response (FastAPI >= 0.118 runs
    # post-yield code after sending it), and whatever is left uncommitted is rolled back here.
    async with _app_state(request).sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_stripe_gateway(request: Request) -> StripeGateway:
    gateway = _app_state(request).stripe
    if gateway is None:
        raise StripeNotConfigured()
    return gateway


StripeGatewayDep = Annotated[StripeGateway, Depends(get_stripe_gateway)]

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False)


async def get_current_user(
    request: Request,
    session: SessionDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    if not token:
        raise Unauthorized("Send an access token as `Authorization: Bearer <token>`.")
    try:
        claims = decode_access_token(_app_state(request).settings, token)
    except InvalidToken as exc:
        raise InvalidAccessToken() from exc
    user = await session.get(User, claims.user_id)
    if user is None or not user.is_active:
        raise InvalidAccessToken()
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


@functools.cache
def require_role(role: Role) -> Any:
    """`Depends` that answers 401 without a valid token and 403 for any other role.

    Used on each audience's router (`dependencies=[require_role(Role.buyer)]`) and in the
    `CurrentBuyer`/`CurrentVendorUser`/`CurrentAdmin` aliases. One `Depends` per role, so a
    route that declares it twice (router and parameter) checks it once per request: FastAPI
    caches a dependency's answer by its callable.
    """

    async def dependency(user: CurrentUser) -> User:
        if user.role is not role:
            raise RoleNotAllowed(f"This endpoint is for {role.value}s.")
        return user

    return Depends(dependency)


CurrentBuyer = Annotated[User, require_role(Role.buyer)]
CurrentAdmin = Annotated[User, require_role(Role.admin)]
# The signed-in vendor user, for what exists before the vendor profile (the profile itself, Stripe
# onboarding) and for services that look the vendor up themselves.
CurrentVendorUser = Annotated[User, require_role(Role.vendor)]


async def get_current_vendor(session: SessionDep, user: CurrentVendorUser) -> Vendor:
    """The vendor profile of the signed-in vendor user; 409 `vendor_profile_required` until the
    user has created it."""
    vendor = await require_vendor(session, user.id)
    # Detached, it keeps the values read here: a service rolling back its own work later in the
    # request would otherwise expire it, and reading an expired attribute would be a lazy load.
    session.expunge(vendor)
    return vendor


CurrentVendor = Annotated[Vendor, Depends(get_current_vendor)]


async def get_current_vendor_id(session: SessionDep, user: CurrentVendorUser) -> uuid.UUID | None:
    """The id of the signed-in vendor user's vendor, None before the profile exists. Routes over
    the vendor's own orders take it: without a profile there are none (an empty list, 404), and
    their input is still validated first (a dependency that raised would answer before it)."""
    return await vendor_id_of(session, user.id)


CurrentVendorId = Annotated[uuid.UUID | None, Depends(get_current_vendor_id)]


def client_address(request: Request) -> str:
    """The client's address as the server saw it: the TCP peer, or what a trusted proxy forwarded
    (`TRUSTED_PROXIES`, applied by uvicorn before the app runs). Never a header a client sent."""
    client = request.scope.get("client")
    return address_key(str(client[0])) if client else "-"


def address_key(host: str) -> str:
    """The unit a per-address budget counts: an IPv4 address, or an IPv6 /64 (one host is
    routinely given a whole /64, so counting single IPv6 addresses would give it 2^64 budgets).
    An IPv4-mapped IPv6 address counts as its IPv4 address."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def rate_limit(scope: str, *, per: Literal["address", "user"] = "address") -> Any:
    """`Depends` counting the request against `settings.rate_limit_<scope>`.

    `per="address"` (register, refresh) counts the client's address; `per="user"` (checkout,
    refund requests) counts the signed-in user, after the token was verified and the user found
    active. Never a token string as sent: each token, valid or not, would get a budget of its own.
    Declare it on the route: `dependencies=[rate_limit("checkout", per="user")]`.
    """
    if per == "user":

        async def by_user(user: CurrentUser, request: Request) -> None:
            state = _app_state(request)
            if state.settings.rate_limit_enabled:
                limit: str = getattr(state.settings, f"rate_limit_{scope}")
                await state.rate_limiter.hit(scope, f"user:{user.id}", limit)

        return Depends(by_user)

    async def by_address(request: Request) -> None:
        state = _app_state(request)
        if state.settings.rate_limit_enabled:
            limit: str = getattr(state.settings, f"rate_limit_{scope}")
            await state.rate_limiter.hit(scope, f"ip:{client_address(request)}", limit)

    return Depends(by_address)


async def limit_login_attempts(
    request: Request,
    state: AppStateDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> None:
    """Login is counted per client address, and refused while the target e-mail has no budget of
    failed attempts left: many addresses guessing one account's password share the e-mail's
    budget. Only failures spend it (`count_failed_login`), so nobody can lock the owner out by
    sending the right password's neighbours' requests — or the right password — in a loop."""
    settings = state.settings
    if not settings.rate_limit_enabled:
        return
    address = client_address(request)
    await state.rate_limiter.hit("login", f"ip:{address}", settings.rate_limit_login)
    await state.rate_limiter.check(
        "login_email", _email_key(form.username), settings.rate_limit_login_email
    )


async def count_failed_login(state: AppState, email: str) -> None:
    """Spend one of the target e-mail's failed-login budget (after a wrong password)."""
    if state.settings.rate_limit_enabled:
        await state.rate_limiter.hit(
            "login_email", _email_key(email), state.settings.rate_limit_login_email
        )


def _email_key(email: str) -> str:
    """The e-mail is hashed before it becomes a storage key."""
    return "email:" + hashlib.sha256(normalize_email(email).encode()).hexdigest()[:32]
