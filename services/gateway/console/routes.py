"""The console's pages. Reads are rendered here from the same database and auth service the API uses;
the pages' JavaScript acts through the REST API under /v1 with the session cookie and the CSRF token.
Signing up, logging in and out, and managing API keys are HTML forms posted here: the account routes of
the API take a bearer credential, which a browser keeps out of reach of scripts in an HttpOnly cookie.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.datastructures import FormData

from shared.accounts_api import ApiKeyCreated, Credentials, Registration
from shared.settings import Environment

from ..api.deps import GatewayDep, SessionDep
from ..client_address import request_client_address
from ..credentials import AuthUnavailableError, Principal
from ..db.jobs import count_jobs, get_job, list_jobs
from ..db.usage import current_period, get_usage
from ..db.webhooks import get_subscription, list_deliveries, list_subscriptions
from ..errors import ApiError
from ..media_types import SUPPORTED_EXTENSIONS
from ..schemas import Analysis
from ..settings import Settings
from ..state import Gateway
from ..webhook_schemas import Delivery, Webhook
from . import accounts
from .cookies import (
    CSRF_FORM_FIELD,
    CookiePolicy,
    clear_session_cookies,
    cookie_policy,
    csrf_failure,
    new_csrf_token,
    request_scheme,
    set_csrf_cookie,
    set_session_cookie,
)
from .views import LEGEND, MODALITY_NAMES, clock, size, utterance_views, when

CONSOLE: Final = "/console"
MAX_FORM_FIELDS: Final = 16
MAX_FORM_PART_BYTES: Final = 8 * 1024
STATIC_PATH: Final = f"{CONSOLE}/static"
PAGE_SIZE: Final = 20
SESSION_ENDED: Final = "Your session has ended. Please log in again."
FORM_EXPIRED: Final = "This form has expired or came from another site. Please try again."
AUTH_UNAVAILABLE: Final = (
    "Your sign-in cannot be checked right now. Nothing was changed; please try again in a minute."
)
UNAVAILABLE_RETRY_AFTER_S: Final = 30
_HERE: Final = Path(__file__).parent

templates = Jinja2Templates(directory=_HERE / "templates")
templates.env.filters.update(clock=clock, when=when, size=size)

router = APIRouter(include_in_schema=False)


class ConsoleUnavailableError(Exception):
    """A console page that cannot be served for now: a person gets a page saying so, not the API's JSON."""


def install_console(app: FastAPI, settings: Settings) -> None:
    """Serve the console's pages and static files; `/` leads to the console."""
    app.state.cookie_policy = CookiePolicy(production=settings.environment is Environment.PRODUCTION)
    app.state.console_csp = content_security_policy(settings)
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=_HERE / "static"), name="console-static")
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
    response = _error_page(request, str(exc), status.HTTP_503_SERVICE_UNAVAILABLE, signed_in=False)
    response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
    return response


@dataclass(frozen=True)
class Visitor:
    """A person signed in to the console: the session's principal and its token (the cookie's value)."""

    principal: Principal
    token: str


def _login_url(next_path: str | None = None, **flags: str) -> str:
    query = {**flags, **({"next": next_path} if next_path else {})}
    return f"{CONSOLE}/login" + (f"?{urlencode(query)}" if query else "")


def _to_login(request: Request, *, ended: bool) -> ApiError:
    """A 303 to the login page, raised from a dependency; a dead session cookie goes with it."""
    next_path = request.url.path if request.method == "GET" else None
    headers = {"Location": _login_url(next_path, **({"ended": "1"} if ended else {}))}
    if ended:
        carrier = Response()
        carrier.delete_cookie(cookie_policy(request).session, path="/", httponly=True, samesite="lax")
        headers["Set-Cookie"] = carrier.headers["set-cookie"]
    return ApiError(status.HTTP_303_SEE_OTHER, "login_required", "log in to use the console", headers=headers)


async def signed_in(request: Request, gateway: GatewayDep) -> Visitor:
    token = request.cookies.get(cookie_policy(request).session)
    if not token:
        raise _to_login(request, ended=False)
    try:
        principal = await gateway.credentials.principal(token)
    except AuthUnavailableError as exc:
        raise ConsoleUnavailableError(AUTH_UNAVAILABLE) from exc
    if principal is None:
        raise _to_login(request, ended=True)
    return Visitor(principal, token)


SignedIn = Annotated[Visitor, Depends(signed_in)]


def _render(
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


def _error_page(request: Request, message: str, status_code: int, *, signed_in: bool = True) -> HTMLResponse:
    return _render(
        request, "error.html", {"message": message, "signed_in": signed_in}, status_code=status_code
    )


async def _checked_form(request: Request) -> tuple[FormData, str | None]:
    """The posted form, and why it fails the CSRF checks (None when it passes)."""
    # The console's forms are a handful of short fields: no files, few parts, small parts.
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_PART_BYTES)
    sent = form.get(CSRF_FORM_FIELD)
    return form, csrf_failure(request, sent if isinstance(sent, str) else None)


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _safe_next(next_path: str | None) -> str:
    """Where to go after logging in: only a console page of this site."""
    if next_path and next_path.startswith(CONSOLE) and not next_path.startswith("//"):
        return next_path
    return CONSOLE


@router.get("/", response_class=RedirectResponse)
async def home() -> RedirectResponse:
    return RedirectResponse(CONSOLE, status_code=status.HTTP_307_TEMPORARY_REDIRECT)


# --- signing up, logging in and out ---------------------------------------------------------------------


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
        "next": _safe_next(next_path),
        "signed_in": False,
    }
    return _render(request, "login.html", context, status_code=status_code)


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
    address = request_client_address(request, gateway.settings.trusted_proxies)
    return (await gateway.account_attempts.check(address, email or None)).allowed


def _credentials(form: FormData) -> Credentials | None:
    try:
        return Credentials.model_validate({"email": _field(form, "email"), "password": form.get("password")})
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
    form, failure = await _checked_form(request)
    email, next_path = _field(form, "email"), _field(form, "next")
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
    response = RedirectResponse(_safe_next(next_path), status_code=status.HTTP_303_SEE_OTHER)
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
    response = _render(request, "welcome.html", context, csrf_token=new_csrf_token())
    _start_session(request, response, session.access_token, session.expires_at)
    return response


@router.post(f"{CONSOLE}/logout")
async def log_out(request: Request, gateway: GatewayDep) -> Response:
    _, failure = await _checked_form(request)
    if failure is not None:
        return _error_page(request, FORM_EXPIRED, status.HTTP_403_FORBIDDEN)
    token = request.cookies.get(cookie_policy(request).session)
    if token:
        try:
            await accounts.log_out(gateway, token)
        except accounts.AccountServiceError as exc:
            if not exc.session_ended:  # an ended session is logged out already
                return _error_page(request, exc.message, status.HTTP_503_SERVICE_UNAVAILABLE)
    response = RedirectResponse(_login_url(out="1"), status_code=status.HTTP_303_SEE_OTHER)
    clear_session_cookies(response, request)
    return response


# --- analyses --------------------------------------------------------------------------------------------


@router.get(CONSOLE, response_class=HTMLResponse)
async def analyses_page(
    request: Request,
    visitor: SignedIn,
    session: SessionDep,
    gateway: GatewayDep,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    owner = visitor.principal.owner
    jobs = await list_jobs(session=session, owner=owner, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    total = await count_jobs(session=session, owner=owner)
    rows = [(Analysis.from_job(job, with_result=False), job.duration_s) for job in jobs]
    context = {
        "signed_in": True,
        "nav": "analyses",
        "rows": rows,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "max_bytes": gateway.settings.max_upload_bytes,
        "extensions": sorted(SUPPORTED_EXTENSIONS),
    }
    return _render(request, "analyses.html", context)


@router.get(f"{CONSOLE}/analyses/{{analysis_id}}", response_class=HTMLResponse)
async def analysis_page(
    request: Request, analysis_id: uuid.UUID, visitor: SignedIn, session: SessionDep
) -> HTMLResponse:
    job = await get_job(session=session, job_id=analysis_id, owner=visitor.principal.owner)
    if job is None:
        return _error_page(request, "No analysis of yours has this address.", status.HTTP_404_NOT_FOUND)
    analysis = Analysis.from_job(job)
    result = analysis.result
    context = {
        "signed_in": True,
        "nav": "analyses",
        "analysis": analysis,
        "duration_s": job.duration_s,
        "is_audio": (job.content_type or "").startswith("audio/"),
        "utterances": utterance_views(result) if result else [],
        "legend": LEGEND,
        "modality_names": MODALITY_NAMES,
    }
    return _render(request, "analysis.html", context)


# --- API keys --------------------------------------------------------------------------------------------


async def _keys_page(
    request: Request,
    gateway: Gateway,
    visitor: Visitor,
    *,
    created: ApiKeyCreated | None = None,
    message: str | None = None,
    error: str | None = None,
    status_code: int = status.HTTP_200_OK,
) -> Response:
    try:
        keys = (await accounts.list_keys(gateway, visitor.token)).items
    except accounts.AccountServiceError as exc:
        if exc.session_ended:
            raise _to_login(request, ended=True) from exc
        return _error_page(request, exc.message, status.HTTP_503_SERVICE_UNAVAILABLE)
    context = {
        "signed_in": True,
        "nav": "keys",
        "keys": keys,
        "created": created,
        "message": message,
        "error": error,
    }
    return _render(request, "keys.html", context, status_code=status_code)


@router.get(f"{CONSOLE}/keys", response_class=HTMLResponse)
async def keys_page(
    request: Request,
    visitor: SignedIn,
    gateway: GatewayDep,
    revoked: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    message = f"The key {revoked}… is revoked." if revoked else None
    return await _keys_page(request, gateway, visitor, message=message)


@router.post(f"{CONSOLE}/keys", response_class=HTMLResponse)
async def create_key(request: Request, visitor: SignedIn, gateway: GatewayDep) -> Response:
    form, failure = await _checked_form(request)
    if failure is not None:
        return await _keys_page(request, gateway, visitor, error=FORM_EXPIRED, status_code=403)
    name = _field(form, "name") or "default"
    if len(name) > 100:
        error = "A key's name has at most 100 characters."
        return await _keys_page(request, gateway, visitor, error=error, status_code=422)
    try:
        created = await accounts.create_key(gateway, visitor.token, name)
    except accounts.AccountServiceError as exc:
        if exc.session_ended:
            raise _to_login(request, ended=True) from exc
        return await _keys_page(request, gateway, visitor, error=exc.message, status_code=422)
    return await _keys_page(request, gateway, visitor, created=created, status_code=201)


@router.post(f"{CONSOLE}/keys/{{key_id}}/revoke")
async def revoke_key(request: Request, key_id: uuid.UUID, visitor: SignedIn, gateway: GatewayDep) -> Response:
    form, failure = await _checked_form(request)
    if failure is not None:
        return await _keys_page(request, gateway, visitor, error=FORM_EXPIRED, status_code=403)
    try:
        await accounts.revoke_key(gateway, visitor.token, key_id)
    except accounts.AccountServiceError as exc:
        if exc.session_ended:
            raise _to_login(request, ended=True) from exc
        return await _keys_page(request, gateway, visitor, error=exc.message, status_code=404)
    prefix = _field(form, "prefix")[:64]
    location = f"{CONSOLE}/keys" + (f"?revoked={quote(prefix)}" if prefix else "")
    return RedirectResponse(location, status_code=status.HTTP_303_SEE_OTHER)


# --- usage, webhooks, examples ---------------------------------------------------------------------------


@router.get(f"{CONSOLE}/usage", response_class=HTMLResponse)
async def usage_page(request: Request, visitor: SignedIn, session: SessionDep) -> HTMLResponse:
    principal = visitor.principal
    usage = await get_usage(session=session, owner=principal.owner, period=current_period())
    limits = principal.limits
    context = {
        "signed_in": True,
        "nav": "usage",
        "period_start": usage.period,
        "resets_at": usage.resets_at,
        "analyses_used": usage.analyses,
        "analyses_limit": limits.monthly_analyses,
        "minutes_used": usage.video_seconds / 60,
        "minutes_limit": limits.monthly_video_seconds / 60,
        "rate_limit": limits.rate_limit_per_minute,
    }
    return _render(request, "usage.html", context)


@router.get(f"{CONSOLE}/webhooks", response_class=HTMLResponse)
async def webhooks_page(request: Request, visitor: SignedIn, session: SessionDep) -> HTMLResponse:
    subscriptions = await list_subscriptions(session=session, owner=visitor.principal.owner)
    context = {
        "signed_in": True,
        "nav": "webhooks",
        "webhooks": [Webhook.from_subscription(subscription) for subscription in subscriptions],
        "events": ["analysis.completed", "analysis.failed", "analysis.progress"],
    }
    return _render(request, "webhooks.html", context)


@router.get(f"{CONSOLE}/webhooks/{{webhook_id}}", response_class=HTMLResponse)
async def webhook_page(
    request: Request, webhook_id: uuid.UUID, visitor: SignedIn, session: SessionDep
) -> HTMLResponse:
    owner = visitor.principal.owner
    subscription = await get_subscription(session=session, owner=owner, subscription_id=webhook_id)
    records = await list_deliveries(session=session, owner=owner, subscription_id=webhook_id, limit=50)
    if subscription is None or records is None:
        return _error_page(request, "No webhook of yours has this address.", status.HTTP_404_NOT_FOUND)
    context = {
        "signed_in": True,
        "nav": "webhooks",
        "webhook": Webhook.from_subscription(subscription),
        "deliveries": [Delivery.from_record(record) for record in records],
    }
    return _render(request, "webhook.html", context)


@router.get(f"{CONSOLE}/examples", response_class=HTMLResponse)
async def examples_page(request: Request, visitor: SignedIn, gateway: GatewayDep) -> Response:
    try:
        keys = (await accounts.list_keys(gateway, visitor.token)).items
    except accounts.AccountServiceError as exc:
        if exc.session_ended:
            raise _to_login(request, ended=True) from exc
        keys = []
    active = [key for key in keys if key.revoked_at is None]
    context = {
        "signed_in": True,
        "nav": "examples",
        "base_url": str(request.base_url.replace(scheme=request_scheme(request))).rstrip("/"),
        "key_prefix": active[0].prefix if active else None,
    }
    return _render(request, "examples.html", context)
