from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response, status
from fastapi.exceptions import RequestValidationError

from marketplace_api.accounts import service
from marketplace_api.accounts.exceptions import (
    CsrfCheckFailed,
    EmailAlreadyRegistered,
    InvalidAccessToken,
    InvalidCredentials,
    InvalidRefreshToken,
)
from marketplace_api.accounts.models import Role
from marketplace_api.accounts.schemas import RefreshRequest, TokenPair, UserCreate, UserRead
from marketplace_api.api.v1.auth import cookies
from marketplace_api.api.v1.auth.forms import LoginForm
from marketplace_api.deps import (
    AppStateDep,
    CurrentUser,
    SessionDep,
    SettingsDep,
    count_failed_login,
    limit_login_attempts,
    rate_limit,
)
from marketplace_api.errors import Unauthorized, problem_responses
from marketplace_api.ratelimit import RateLimited

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    summary="Create a buyer or vendor account",
    responses=problem_responses(EmailAlreadyRegistered, RateLimited),
    dependencies=[rate_limit("register")],
)
async def register(body: UserCreate, session: SessionDep) -> UserRead:
    user = await service.create_user(
        session,
        email=body.email,
        password=body.password,
        role=Role(body.role),
        full_name=body.full_name,
    )
    return UserRead.model_validate(user)


_COOKIE_MODE = (
    " In refresh-token cookie mode (`REFRESH_TOKEN_COOKIE=true`) the refresh token is not in the"
    " JSON body: it travels in an HttpOnly cookie (path `/v1/auth`), and the request needs an"
    " allowed `Origin` and an `X-Requested-With` header (`csrf_check_failed` otherwise)."
)


@router.post(
    "/token",
    summary="Log in (OAuth2 password flow): e-mail as `username`",
    description="Returns a short-lived access token and a single-use refresh token."
    " In refresh-token cookie mode the refresh token is set as an HttpOnly cookie instead.",
    responses=problem_responses(InvalidCredentials, CsrfCheckFailed, RateLimited),
    dependencies=[Depends(limit_login_attempts)],
    response_model_exclude_none=True,
)
async def token(
    form: Annotated[LoginForm, Depends()],
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    state: AppStateDep,
) -> TokenPair:
    if settings.refresh_token_cookie:
        # Setting the cookie is what a cross-site form must not do: it would log the victim's
        # browser into the attacker's account (login CSRF).
        cookies.check_csrf(request, settings)
    try:
        user = await service.authenticate(session, email=form.username, password=form.password)
    except InvalidCredentials:
        await count_failed_login(state, form.username)
        raise
    return cookies.deliver(response, settings, await service.issue_tokens(session, settings, user))


def _missing_body() -> RequestValidationError:
    return RequestValidationError(
        [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
    )


async def _sent_refresh_token(
    request: Request,
    settings: SettingsDep,
    body: Annotated[RefreshRequest | None, Body()] = None,
) -> str | None:
    """The refresh token the client sent: in cookie mode the cookie's (None without one), after
    the CSRF checks; otherwise the JSON body's (a 422 without a body)."""
    if settings.refresh_token_cookie:
        return cookies.cookie_token(request, settings)
    if body is None:
        raise _missing_body()
    return body.refresh_token


SentRefreshToken = Annotated[str | None, Depends(_sent_refresh_token)]


@router.post(
    "/refresh",
    summary="Exchange a refresh token for a new token pair (the old one stops working)",
    description="JSON-body mode: send `refresh_token`." + _COOKIE_MODE,
    responses=problem_responses(InvalidRefreshToken, CsrfCheckFailed, RateLimited),
    dependencies=[rate_limit("refresh")],
    response_model_exclude_none=True,
)
async def refresh(
    response: Response, session: SessionDep, settings: SettingsDep, token: SentRefreshToken
) -> TokenPair:
    if token is None:
        raise InvalidRefreshToken("No refresh-token cookie was sent.")
    pair = await service.rotate_refresh_token(session, settings, token)
    return cookies.deliver(response, settings, pair)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a refresh token and every token rotated from it",
    description="JSON-body mode: send `refresh_token`." + _COOKIE_MODE + " The cookie is cleared.",
    responses=problem_responses(CsrfCheckFailed),
)
async def logout(
    response: Response, session: SessionDep, settings: SettingsDep, token: SentRefreshToken
) -> None:
    if settings.refresh_token_cookie:
        cookies.clear(response, settings)
    if token is not None:
        await service.revoke_refresh_token(session, token)


@router.get(
    "/me",
    summary="The authenticated user",
    responses=problem_responses(Unauthorized, InvalidAccessToken),
)
async def me(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)
