"""`python -m services.gateway`: migrate the database to the newest schema (unless told not to), then
serve the API."""

import asyncio
import logging

import uvicorn

from shared.db.migrate import upgrade

from .main import create_app
from .settings import Settings


def main() -> None:
    settings = Settings()
    settings.require_declared_environment()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if settings.migrate_on_start:
        asyncio.run(upgrade(settings.database_url))
    # proxy_headers off: which forwarded address to believe is the gateway's own rule (EA_TRUSTED_PROXIES).
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_level="warning",
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
