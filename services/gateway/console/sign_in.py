"""Signing up, logging in and out: HTML forms posted here, so the session token stays in an HttpOnly
cookie."""

from datetime import UTC, datetime
from typing import Annotated, Final

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from starlette.datastructures import FormData

from emotion_contract.accounts import Registration
from emotion_contract.credentials import Credentials

from ..api.deps import GatewayDep
from ..client_address import request_limit_key
from ..state import Gateway
from . import accounts
from .cookies import clear_session_cookies, cookie_policy, new_csrf_token, set_csrf_cookie, set_session_cookie
from .pages import (
    CONSOLE,
    FORM_EXPIRED,
    checked_form,
    error_page,
    field,
    login_url,
    render,
    safe_next,
)

SESSION_ENDED: Final = "Your session has ended. Please log in again."

router = APIRouter(include_in_schema=False)


def _account_page(
    request: Request,
    mode: str,
    *,
    message: str | None = None,
    error: str | None = None,
    email: str = "",
    next_path: str | None = None,
    status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    context = {
        "mode": mode,
        "message": message,
        "error": error,
        "email": email,
        "next": safe_next(next_path),
        "signed_in": False,
    }
    return render(request, "login.html", context, status_code=status_code)


@router.get(f"{CONSOLE}/login", response_class=HTMLResponse)
async def login_page(
    request: Request,
    ended: Annotated[bool, Query()] = False,
    out: Annotated[bool, Query()] = False,
    next_path: Annotated[str | None, Query(alias="next", max_length=2048)] = None,
) -> HTMLResponse:
    message = SESSION_ENDED if ended else ("You have logged out." if out else None)
    return _account_page(request, "login", message=message, next_path=next_path)


@router.get(f"{CONSOLE}/signup", response_class=HTMLResponse)
async def signup_page(request: Request) -> HTMLResponse:
    return _account_page(request, "signup")


async def _attempt_allowed(gateway: Gateway, request: Request, email: str) -> bool:
    # The same cells as the API's POST /v1/users and /v1/sessions: one budget per address and per e-mail.
    address = request_limit_key(request, gateway.settings.trusted_proxies)
    return (await gateway.account_attempts.check(address, email or None)).allowed


def _credentials(form: FormData) -> Credentials | None:
    try:
        return Credentials.model_validate({"email": field(form, "email"), "password": form.get("password")})
    except ValidationError:
        return None


def _start_session(request: Request, response: Response, token: str, expires_at: datetime) -> None:
    """The session cookie lives as long as the session's token."""
    max_age_s = max(1, int((expires_at - datetime.now(UTC)).total_seconds()))
    set_session_cookie(response, request, token, max_age_s)


async def _account_form(
    request: Request, gateway: Gateway, mode: str
) -> tuple[Credentials, str] | HTMLResponse:
    """The form's credentials and next page, or the form again with what went wrong."""
    form, failure = await checked_form(request)
    email, next_path = field(form, "email"), field(form, "next")
    if failure is not None:
        return _account_page(request, mode, error=FORM_EXPIRED, email=email, status_code=403)
    if not await _attempt_allowed(gateway, request, email):
        error = "Too many attempts from your address or for this account. Please wait a minute and try again."
        return _account_page(request, mode, error=error, email=email, status_code=429)
    credentials = _credentials(form)
    if credentials is None:
        error = "Enter a valid email address and a password of at least 10 characters."
        return _account_page(request, mode, error=error, email=email, next_path=next_path, status_code=422)
    return credentials, next_path


@router.post(f"{CONSOLE}/login", response_class=HTMLResponse)
async def log_in(request: Request, gateway: GatewayDep) -> Response:
    checked = await _account_form(request, gateway, "login")
    if isinstance(checked, Response):
        return checked
    credentials, next_path = checked
    email = str(credentials.email)
    try:
        session = await accounts.log_in(gateway, email, credentials.password.get_secret_value())
    except accounts.AccountServiceError as exc:
        return _account_page(
            request, "login", error=exc.message, email=email, next_path=next_path, status_code=401
        )
    response = RedirectResponse(safe_next(next_path), status_code=status.HTTP_303_SEE_OTHER)
    _start_session(request, response, session.access_token, session.expires_at)
    # A fresh CSRF token with each session: one planted before login is worth nothing after it.
    set_csrf_cookie(response, request, new_csrf_token())
    return response


@router.post(f"{CONSOLE}/signup", response_class=HTMLResponse)
async def sign_up(request: Request, gateway: GatewayDep) -> Response:
    checked = await _account_form(request, gateway, "signup")
    if isinstance(checked, Response):
        return checked
    credentials, _ = checked
    email, password = str(credentials.email), credentials.password.get_secret_value()
    try:
        registration: Registration = await accounts.register(gateway, email, password)
        session = await accounts.log_in(gateway, email, password)
    except accounts.AccountServiceError as exc:
        return _account_page(request, "signup", error=exc.message, email=email, status_code=409)
    context = {"signed_in": True, "nav": "keys", "created": registration.api_key, "email": email}
    # The page sets a fresh CSRF cookie along with the session, as a login does.
    response = render(request, "welcome.html", context, csrf_token=new_csrf_token())
    _start_session(request, response, session.access_token, session.expires_at)
    return response


@router.post(f"{CONSOLE}/logout")
async def log_out(request: Request, gateway: GatewayDep) -> Response:
    _, failure = await checked_form(request)
    if failure is not None:
        return error_page(request, FORM_EXPIRED, status.HTTP_403_FORBIDDEN)
    token = request.cookies.get(cookie_policy(request).session)
    if token:
        try:
            await accounts.log_out(gateway, token)
        except accounts.AccountServiceError as exc:
            if not exc.session_ended:  # an ended session is logged out already
                return error_page(request, exc.message, status.HTTP_503_SERVICE_UNAVAILABLE)
    response = RedirectResponse(login_url(out="1"), status_code=status.HTTP_303_SEE_OTHER)
    clear_session_cookies(response, request)
    return response
