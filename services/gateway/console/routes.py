"""The console: server-rendered pages, one module per page. Reads are rendered from the same database and
auth service the API uses; the pages' JavaScript acts through the REST API under /v1 with the session cookie
and the CSRF token. Signing up, logging in and out, and managing API keys are HTML forms posted here: the
account routes of the API take a bearer credential, which a browser keeps out of reach of scripts in an
HttpOnly cookie.
"""

from typing import Final

from fastapi import APIRouter, FastAPI, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from shared.settings import Environment

from ..settings import Settings
from . import analyses, examples, keys, sign_in, usage, webhooks
from .cookies import CookiePolicy
from .pages import CONSOLE, HERE, STATIC_PATH, ConsoleUnavailableError, error_page

UNAVAILABLE_RETRY_AFTER_S: Final = 30

router = APIRouter(include_in_schema=False)
PAGES: Final = (sign_in.router, analyses.router, keys.router, usage.router, webhooks.router, examples.router)


def install_console(app: FastAPI, settings: Settings) -> None:
    """Serve the console's pages and static files; `/` leads to the console."""
    app.state.cookie_policy = CookiePolicy(production=settings.environment is Environment.PRODUCTION)
    app.state.console_csp = content_security_policy(settings)
    app.include_router(router)
    for page in PAGES:
        app.include_router(page)
    app.mount(STATIC_PATH, StaticFiles(directory=HERE / "static"), name="console-static")
    app.add_exception_handler(ConsoleUnavailableError, _unavailable_page)


def content_security_policy(settings: Settings) -> str:
    """The console's pages run only their own script and styles; the browser may talk to this origin and to
    the object store (uploads, media), and nothing may frame them. Inline style attributes draw the bars."""
    store = str(
        settings.public_s3_endpoint or f"{'https' if settings.s3_secure else 'http'}://{settings.s3_endpoint}"
    )
    store = store.rstrip("/")
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "style-src-attr 'unsafe-inline'",
            "img-src 'self' data:",
            f"media-src 'self' {store} blob:",
            f"connect-src 'self' {store}",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "object-src 'none'",
        ]
    )


async def _unavailable_page(request: Request, exc: Exception) -> HTMLResponse:
    response = error_page(request, str(exc), status.HTTP_503_SERVICE_UNAVAILABLE, signed_in=False)
    response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
    return response


@router.get("/", response_class=RedirectResponse)
async def home() -> RedirectResponse:
    return RedirectResponse(CONSOLE, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
