"""Every model, imported in one place so `Base.metadata` is complete (Alembic, tests)."""

from marketplace_api.accounts.models import RefreshToken, User
from marketplace_api.db import Base

__all__ = ["Base", "RefreshToken", "User"]
