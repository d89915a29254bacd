import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Final

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from ...state import Gateway
from ..deps import GatewayDep

CHECK_TIMEOUT_S: Final = 3.0
logger = logging.getLogger(__name__)

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
        *(
            check(name, probe)
            for name, probe in zip(
                names, (_database(gateway), _broker(gateway), _object_store(gateway)), strict=True
            )
        )
    )
    checks = dict(zip(names, outcomes, strict=True))
    ready = all(outcome == "ok" for outcome in outcomes)
    body = Health(status="ok" if ready else "unavailable", checks=checks)
    code = status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(body.model_dump(), status_code=code)


async def check(name: str, probe: Coroutine[Any, Any, None]) -> str:
    """ "ok", "timeout" or "unavailable". The endpoint is public: what went wrong (host names, addresses,
    driver messages) goes to the log, never into the answer."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await probe
    except TimeoutError:
        logger.warning("readiness: %s did not answer within %g s", name, CHECK_TIMEOUT_S)
        return "timeout"
    except Exception:
        logger.warning("readiness: %s is unavailable", name, exc_info=True)
        return "unavailable"
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
