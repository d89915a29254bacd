"""What the routes share, built in the app's lifespan and kept on `app.state.auth`."""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from .api_keys import KeyHasher
from .metrics import AuthMetrics
from .passwords import Passwords
from .settings import Settings
from .tokens import SessionTokens


@dataclass(frozen=True)
class AuthState:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    passwords: Passwords
    tokens: SessionTokens
    keys: KeyHasher
    metrics: AuthMetrics
