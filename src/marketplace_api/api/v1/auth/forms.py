"""The OAuth2 password-flow form of `POST /v1/auth/token`, each field bounded and storable."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Form
from fastapi.security import OAuth2PasswordRequestForm

from marketplace_api.inputs import Text

# The e-mail is looked up in the database: PostgreSQL must be able to compare it (no NUL).
# The password is only hashed, but argon2 over megabytes is work an attacker should not buy
# with one request: 1024 is far above any password registration accepts.
EMAIL_MAX_LENGTH = 320
PASSWORD_MAX_LENGTH = 1024


class LoginForm(OAuth2PasswordRequestForm):
    """`OAuth2PasswordRequestForm` with the same fields, validated like every other input."""

    def __init__(
        self,
        *,
        grant_type: Annotated[Literal["password"] | None, Form()] = None,
        username: Annotated[
            Text, Form(max_length=EMAIL_MAX_LENGTH, description="The account's e-mail.")
        ],
        password: Annotated[
            Text, Form(max_length=PASSWORD_MAX_LENGTH, json_schema_extra={"format": "password"})
        ],
        scope: Annotated[Text, Form(max_length=1000)] = "",
        client_id: Annotated[Text | None, Form(max_length=200)] = None,
        client_secret: Annotated[
            Text | None, Form(max_length=200, json_schema_extra={"format": "password"})
        ] = None,
    ) -> None:
        super().__init__(
            grant_type=grant_type,
            username=username,
            password=password,
            scope=scope,
            client_id=client_id,
            client_secret=client_secret,
        )
