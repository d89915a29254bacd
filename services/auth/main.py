"""Builds the auth service's FastAPI app: accounts, sessions, API keys and introspection under /v1."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI, Request, status
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from shared.body_limit import BodyLimitMiddleware
from shared.db.session import create_engine, session_factory
from shared.metrics_server import metrics_server

from .api_keys import KeyHasher
from .errors import error_response, install_error_handlers
from .metrics import AuthMetrics
from .passwords import HashingBusy, Passwords, check_memory_budget, memory_limit_bytes
from .routes import introspection, keys, sessions, users
from .settings import Settings
from .state import AuthState
from .tokens import SessionTokens

API_PREFIX = "/v1"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = AuthMetrics(CollectorRegistry())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        check_memory_budget(
            memory_cost_kib=settings.password_memory_cost_kib,
            concurrency=settings.password_hash_concurrency,
            limit_bytes=memory_limit_bytes(),
        )
        # Hashes its dummy password: real work, done off the event loop.
        passwords = await asyncio.to_thread(Passwords.from_settings, settings)
        metrics.watch_passwords(passwords)
        engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
        try:
            app.state.auth = AuthState(
                settings=settings,
                sessions=session_factory(engine),
                passwords=passwords,
                tokens=SessionTokens(
                    secret=settings.jwt_secret.get_secret_value(), issuer=settings.jwt_issuer
                ),
                keys=KeyHasher(settings.key_pepper.get_secret_value()),
                metrics=metrics,
            )
            async with metrics_server(metrics.registry, settings.http_host, settings.metrics_port):
                yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="Emotion Analyzer auth",
        summary="Accounts, login sessions, API keys, and introspection of credentials for the gateway.",
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware)

    @app.exception_handler(HashingBusy)
    async def hashing_busy(request: Request, exc: HashingBusy) -> JSONResponse:
        metrics.hashing_refused.inc()
        return error_response(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "auth_busy",
            "too many logins are being checked right now; retry in a moment",
            headers={"Retry-After": str(exc.retry_after_s)},
        )

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness."""
        return {"status": "ok"}

    api = APIRouter(prefix=API_PREFIX)
    api.include_router(users.router)
    api.include_router(sessions.router)
    api.include_router(keys.router)
    api.include_router(introspection.router)
    app.include_router(api)
    return app


# For `python -m services.auth` and `uvicorn services.auth.main:app`; building it reads settings, no more.
app = create_app()
