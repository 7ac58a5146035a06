from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from marketplace_api.accounts.models import Role
from marketplace_api.inputs import Email, Text


class UserCreate(BaseModel):
    email: Email
    password: Text = Field(min_length=10, max_length=128, examples=["correct-horse-battery"])
    role: Literal["buyer", "vendor"] = Field(
        default="buyer", description="Admins are created with `marketplace-api create-admin`."
    )
    full_name: Text | None = Field(default=None, max_length=200)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    role: Role
    full_name: str | None
    created_at: datetime


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - not a secret
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str | None = Field(
        default=None,
        description="Single-use; each refresh returns a new one. Absent in refresh-token cookie "
        "mode (`REFRESH_TOKEN_COOKIE`), where it travels in an HttpOnly cookie instead.",
    )


class RefreshRequest(BaseModel):
    refresh_token: Text = Field(min_length=10, max_length=200)
