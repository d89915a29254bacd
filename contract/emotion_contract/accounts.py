"""The account API's bodies: served by auth, relayed by the gateway, read by the client.

Services never import each other; both import these models, so the two ends cannot drift apart. The
credentials a user signs up and in with are in `emotion_contract.credentials` (they need `pydantic[email]`).
"""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field


class Limits(BaseModel):
    monthly_analyses: int = Field(ge=0, description="Analyses per calendar month (UTC)")
    monthly_video_seconds: int = Field(ge=0, description="Seconds of video or audio per calendar month")
    rate_limit_per_minute: int = Field(ge=1, description="Requests per minute, per API key")


class User(BaseModel):
    id: uuid.UUID
    email: str
    created_at: datetime
    limits: Limits


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="default", min_length=1, max_length=100, examples=["ci"])


class ApiKeyInfo(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's visible start, to recognise it by", examples=["ea_3fA9kQ2x"])
    created_at: datetime
    last_used_at: datetime | None = Field(description="Accurate to the gateway's key cache (seconds)")
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyInfo):
    key: str = Field(description="The whole key. It is shown this once and never again")


class ApiKeyList(BaseModel):
    items: list[ApiKeyInfo]


class Registration(BaseModel):
    user: User
    api_key: ApiKeyCreated = Field(description="The account's first API key, shown this once")


class SessionToken(BaseModel):
    access_token: str = Field(description="A signed JWT; send it as `Authorization: Bearer <token>`")
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime


class CredentialKind(StrEnum):
    API_KEY = "api_key"
    SESSION = "session"


# No key or session token is anywhere near this long; a longer one is refused without being looked up.
MAX_CREDENTIAL_CHARS: Final = 4096


class IntrospectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(max_length=MAX_CREDENTIAL_CHARS, description="An API key or a session JWT")


class Introspection(BaseModel):
    """Whether a credential is valid now, and whose it is (after RFC 7662)."""

    active: bool
    user_id: uuid.UUID | None = None
    kind: CredentialKind | None = None
    credential_id: uuid.UUID | None = Field(default=None, description="The API key's or the session's id")
    limits: Limits | None = None
