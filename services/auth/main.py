"""The auth service: answers which owner an API key belongs to (RFC 7662-style introspection)."""

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from .keys import Introspection, introspect
from .settings import Settings

settings = Settings()
app = FastAPI(title="Emotion Analyzer auth", version="0.1.0")


class IntrospectRequest(BaseModel):
    key: str


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness."""
    return {"status": "ok"}


@app.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@app.post("/v1/introspect")
async def introspect_key(body: IntrospectRequest) -> Introspection:
    """Whether a key is valid, and whose it is."""
    return introspect(
        body.key, static_key=settings.api_key.get_secret_value(), static_owner=settings.static_owner
    )
