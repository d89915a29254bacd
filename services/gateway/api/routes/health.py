import asyncio
from collections.abc import Coroutine
from typing import Any, Final

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from ...state import Gateway
from ..deps import GatewayDep

CHECK_TIMEOUT_S: Final = 3.0

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


@router.get("/healthz")
async def healthz() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get("/readyz", responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": Health}})
async def readyz(gateway: GatewayDep) -> JSONResponse:
    """Readiness: PostgreSQL, the Kafka broker and the object store all answer."""
    names = ("database", "broker", "object_store")
    outcomes = await asyncio.gather(
        _check(_database(gateway)), _check(_broker(gateway)), _check(_object_store(gateway))
    )
    checks = dict(zip(names, outcomes, strict=True))
    ready = all(outcome == "ok" for outcome in outcomes)
    body = Health(status="ok" if ready else "unavailable", checks=checks)
    code = status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(body.model_dump(), status_code=code)


async def _check(probe: Coroutine[Any, Any, None]) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await probe
    except TimeoutError:
        return f"error: no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as exc:
        return f"error: {exc}"
    return "ok"


async def _database(gateway: Gateway) -> None:
    async with gateway.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _broker(gateway: Gateway) -> None:
    if not await gateway.broker.ping(timeout=CHECK_TIMEOUT_S):
        raise ConnectionError("the broker does not answer")


async def _object_store(gateway: Gateway) -> None:
    bucket = gateway.settings.uploads_bucket
    if not await asyncio.to_thread(gateway.store.client.bucket_exists, bucket):
        raise LookupError(f"bucket {bucket!r} does not exist")
