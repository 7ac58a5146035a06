"""Refresh-token cookie mode (`REFRESH_TOKEN_COOKIE=true`): where the refresh token travels.

JSON-body mode (the default) returns the refresh token in the token response and takes it back in
the body of refresh and logout. Cookie mode keeps it out of reach of the page's JavaScript: it is
set as an `HttpOnly`, `Secure`, `SameSite=Strict` cookie whose path is the auth routes
(`/v1/auth`), so it is never sent with the rest of the API and never appears in a JSON body.

A cookie is sent by the browser on its own, so refresh and logout need a CSRF defence:

* `SameSite=Strict`: no cross-site request carries the cookie at all. Strict rather than Lax: the
  cookie is only ever used by fetch() POSTs from the SPA, never by a top-level navigation (Lax's
  one addition), so Strict costs nothing. It needs the SPA and the API on the same site
  (`app.example.com` and `api.example.com`), which is the deployment cookie mode is for.
* The `Origin` header must be one of `CORS_ORIGINS`: SameSite does not separate origins of the
  same site (a sibling subdomain, another port), the allowlist does. Browsers send `Origin` on
  every POST, so a request without one is refused.
* A custom `X-Requested-With` header must be present: an HTML form cannot send one, and a script
  of another origin cannot send one without a CORS preflight that only allowed origins pass.
"""

from __future__ import annotations

from fastapi import Request, Response

from marketplace_api.accounts.exceptions import CsrfCheckFailed, InvalidRefreshToken
from marketplace_api.accounts.schemas import TokenPair
from marketplace_api.config import Settings

CSRF_HEADER = "X-Requested-With"
COOKIE_PATH = "/v1/auth"
_MAX_TOKEN_LENGTH = 200


def cookie_name(settings: Settings) -> str:
    # The `__Secure-` prefix makes browsers refuse the cookie unless it is Secure and set over
    # HTTPS, so a plain-http page of the same site cannot plant one.
    return "__Secure-refresh_token" if settings.refresh_cookie_secure else "refresh_token"


def deliver(response: Response, settings: Settings, pair: TokenPair) -> TokenPair:
    """The token response: in cookie mode the refresh token goes into the cookie, not the body."""
    if not settings.refresh_token_cookie or pair.refresh_token is None:
        return pair
    response.set_cookie(
        cookie_name(settings),
        pair.refresh_token,
        max_age=settings.refresh_token_ttl_seconds,
        path=COOKIE_PATH,
        secure=settings.refresh_cookie_secure,
        httponly=True,
        samesite="strict",
    )
    return pair.model_copy(update={"refresh_token": None})


def clear(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        cookie_name(settings),
        path=COOKIE_PATH,
        secure=settings.refresh_cookie_secure,
        httponly=True,
        samesite="strict",
    )


def check_csrf(request: Request, settings: Settings) -> None:
    if not request.headers.get(CSRF_HEADER):
        raise CsrfCheckFailed(f"Send the {CSRF_HEADER} header with this request.")
    origin = request.headers.get("origin")
    if origin is None or origin not in settings.cors_origins:
        raise CsrfCheckFailed("The request's Origin is not one of the allowed origins.")


def cookie_token(request: Request, settings: Settings) -> str | None:
    """The refresh token of the cookie, after the CSRF checks (cookie mode only)."""
    check_csrf(request, settings)
    token = request.cookies.get(cookie_name(settings))
    if token is not None and not 0 < len(token) <= _MAX_TOKEN_LENGTH:
        raise InvalidRefreshToken()
    return token
