"""The auth service: answers which owner an API key belongs to (RFC 7662-style introspection)."""

from fastapi import FastAPI
from prometheus_client import make_asgi_app
from pydantic import BaseModel

from .keys import Introspection, introspect
from .settings import Settings

settings = Settings()
app = FastAPI(title="Emotion Analyzer auth", version="0.1.0")
app.mount("/metrics", make_asgi_app())


class IntrospectRequest(BaseModel):
    key: str


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness."""
    return {"status": "ok"}


@app.post("/v1/introspect")
async def introspect_key(body: IntrospectRequest) -> Introspection:
    """Whether a key is valid, and whose it is."""
    return introspect(
        body.key, static_key=settings.api_key.get_secret_value(), static_owner=settings.static_owner
    )
