"""The auth service's tables: user accounts, login sessions and API keys.

Secrets are never stored: passwords as argon2 hashes, API keys as keyed SHA-256 digests (a key carries
192 random bits, so a slow hash would only cost latency), sessions as the JWT's id so they can be revoked.
"""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from shared.db.models import timestamp_field


class UserAccount(SQLModel, table=True):
    __tablename__ = "user_account"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(max_length=320, unique=True, description="Lower-cased")
    password_hash: str = Field(sa_type=sa.Text)
    monthly_analyses: int | None = Field(default=None, ge=0, description="None: the deployment's default")
    monthly_video_seconds: int | None = Field(default=None, ge=0, description="None: the default")
    rate_limit_per_minute: int | None = Field(default=None, ge=1, description="Per API key; None: default")
    disabled: bool = Field(default=False)
    created_at: datetime = timestamp_field(nullable=False)


class AuthSession(SQLModel, table=True):
    """One login: the JWT's `jti`. Logging out sets `revoked_at`, which introspection checks."""

    __tablename__ = "auth_session"
    __table_args__ = (sa.Index("ix_auth_session_user_id", "user_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", ondelete="CASCADE")
    created_at: datetime = timestamp_field(nullable=False)
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    revoked_at: datetime | None = timestamp_field(nullable=True)


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"
    __table_args__ = (sa.Index("ix_api_key_user_id", "user_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", ondelete="CASCADE")
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=32, unique=True, description="The key's visible start, e.g. ea_3fA9kQ2x")
    key_hash: str = Field(max_length=64, unique=True, description="hex HMAC-SHA256 of the whole key")
    created_at: datetime = timestamp_field(nullable=False)
    last_used_at: datetime | None = timestamp_field(nullable=True)
    revoked_at: datetime | None = timestamp_field(nullable=True)
