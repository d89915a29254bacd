"""What every console page shares: the signed-in visitor, rendering with the CSRF cookie and the headers a
page needs, the posted form's checks, and the way back to the login page."""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import Depends, Request, Response, status
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from ..api.deps import GatewayDep
from ..credentials import AuthUnavailableError, Principal
from ..errors import ApiError
from .cookies import CSRF_FORM_FIELD, cookie_policy, csrf_failure, new_csrf_token, set_csrf_cookie
from .views import clock, size, when

CONSOLE: Final = "/console"
MAX_FORM_FIELDS: Final = 16
MAX_FORM_PART_BYTES: Final = 8 * 1024
STATIC_PATH: Final = f"{CONSOLE}/static"
PAGE_SIZE: Final = 20
FORM_EXPIRED: Final = "This form has expired or came from another site. Please try again."
AUTH_UNAVAILABLE: Final = (
    "Your sign-in cannot be checked right now. Nothing was changed; please try again in a minute."
)
HERE: Final = Path(__file__).parent

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(clock=clock, when=when, size=size)


class ConsoleUnavailableError(Exception):
    """A console page that cannot be served for now: a person gets a page saying so, not the API's JSON."""


@dataclass(frozen=True)
class Visitor:
    """A person signed in to the console: the session's principal and its token (the cookie's value)."""

    principal: Principal
    token: str


def login_url(next_path: str | None = None, **flags: str) -> str:
    query = {**flags, **({"next": next_path} if next_path else {})}
    return f"{CONSOLE}/login" + (f"?{urlencode(query)}" if query else "")


def to_login(request: Request, *, ended: bool) -> ApiError:
    """A 303 to the login page, raised from a dependency; a dead session cookie goes with it."""
    next_path = request.url.path if request.method == "GET" else None
    headers = {"Location": login_url(next_path, **({"ended": "1"} if ended else {}))}
    if ended:
        carrier = Response()
        carrier.delete_cookie(cookie_policy(request).session, path="/", httponly=True, samesite="lax")
        headers["Set-Cookie"] = carrier.headers["set-cookie"]
    return ApiError(status.HTTP_303_SEE_OTHER, "login_required", "log in to use the console", headers=headers)


async def signed_in(request: Request, gateway: GatewayDep) -> Visitor:
    token = request.cookies.get(cookie_policy(request).session)
    if not token:
        raise to_login(request, ended=False)
    try:
        principal = await gateway.credentials.principal(token)
    except AuthUnavailableError as exc:
        raise ConsoleUnavailableError(AUTH_UNAVAILABLE) from exc
    if principal is None:
        raise to_login(request, ended=True)
    return Visitor(principal, token)


SignedIn = Annotated[Visitor, Depends(signed_in)]


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = status.HTTP_200_OK,
    csrf_token: str | None = None,
) -> HTMLResponse:
    """The page, with a CSRF cookie for its forms and scripts (a new one when the browser has none)."""
    csrf_cookie = cookie_policy(request).csrf
    token = csrf_token or request.cookies.get(csrf_cookie) or new_csrf_token()
    response = templates.TemplateResponse(
        request,
        template,
        {"csrf_token": token, "csrf_field": CSRF_FORM_FIELD, "static": STATIC_PATH, **context},
        status_code=status_code,
    )
    if request.cookies.get(csrf_cookie) != token:
        set_csrf_cookie(response, request, token)
    # Pages may show a secret once: no cache keeps them, no other site frames them.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = request.app.state.console_csp
    return response


def error_page(request: Request, message: str, status_code: int, *, signed_in: bool = True) -> HTMLResponse:
    return render(
        request, "error.html", {"message": message, "signed_in": signed_in}, status_code=status_code
    )


async def checked_form(request: Request) -> tuple[FormData, str | None]:
    """The posted form, and why it fails the CSRF checks (None when it passes)."""
    # The console's forms are a handful of short fields: no files, few parts, small parts.
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_PART_BYTES)
    sent = form.get(CSRF_FORM_FIELD)
    return form, csrf_failure(request, sent if isinstance(sent, str) else None)


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def safe_next(next_path: str | None) -> str:
    """Where to go after logging in: only a console page of this site."""
    if next_path and next_path.startswith(CONSOLE) and not next_path.startswith("//"):
        return next_path
    return CONSOLE
