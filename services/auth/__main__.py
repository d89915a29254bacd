"""`python -m services.auth`: serve the auth API (the gateway's start applies the migrations)."""

import logging

import uvicorn

from .main import app
from .settings import Settings


def main() -> None:
    settings: Settings = app.state.settings
    settings.require_declared_environment()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_level="warning")


if __name__ == "__main__":
    main()
