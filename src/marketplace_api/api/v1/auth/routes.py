from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from marketplace_api.accounts import service
from marketplace_api.accounts.exceptions import (
    EmailAlreadyRegistered,
    InvalidAccessToken,
    InvalidCredentials,
    InvalidRefreshToken,
)
from marketplace_api.accounts.models import Role
from marketplace_api.accounts.schemas import RefreshRequest, TokenPair, UserCreate, UserRead
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


@router.post(
    "/token",
    summary="Log in (OAuth2 password flow): e-mail as `username`",
    description="Returns a short-lived access token and a single-use refresh token.",
    responses=problem_responses(InvalidCredentials, RateLimited),
    dependencies=[Depends(limit_login_attempts)],
)
async def token(
    form: Annotated[LoginForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
    state: AppStateDep,
) -> TokenPair:
    try:
        user = await service.authenticate(session, email=form.username, password=form.password)
    except InvalidCredentials:
        await count_failed_login(state, form.username)
        raise
    return await service.issue_tokens(session, settings, user)


@router.post(
    "/refresh",
    summary="Exchange a refresh token for a new token pair (the old one stops working)",
    responses=problem_responses(InvalidRefreshToken, RateLimited),
    dependencies=[rate_limit("refresh")],
)
async def refresh(body: RefreshRequest, session: SessionDep, settings: SettingsDep) -> TokenPair:
    return await service.rotate_refresh_token(session, settings, body.refresh_token)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a refresh token and every token rotated from it",
)
async def logout(body: RefreshRequest, session: SessionDep) -> None:
    await service.revoke_refresh_token(session, body.refresh_token)


@router.get(
    "/me",
    summary="The authenticated user",
    responses=problem_responses(Unauthorized, InvalidAccessToken),
)
async def me(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)
