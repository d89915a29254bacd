import uvicorn

from .main import app, settings

uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_level="warning")
