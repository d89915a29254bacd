"""A browser's credentials: the session JWT in an HttpOnly cookie, and a double-submit CSRF token.

A cookie rides along with every request the browser sends to this origin, whoever's page made it. So a
request authenticated by the cookie must prove it came from this origin's own pages: an unsafe method
sends the CSRF cookie's value back (header or form field), which a foreign page cannot read, and any
Origin or Referer it carries names this origin.
"""

import hmac
import secrets
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from fastapi import Request, Response, status

from ..errors import ApiError

# Development names; production's carry the __Host- prefix (see CookiePolicy).
SESSION_COOKIE: Final = "ea_session"
CSRF_COOKIE: Final = "ea_csrf"
HOST_PREFIX: Final = "__Host-"
CSRF_HEADER: Final = "X-CSRF-Token"
CSRF_FORM_FIELD: Final = "csrf_token"
UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The CSRF token outlives sessions: it only has to be unknown to other origins, not to expire.
CSRF_MAX_AGE_S: Final = 30 * 24 * 3600
_CSRF_TOKEN_BYTES: Final = 32


@dataclass(frozen=True)
class CookiePolicy:
    """In production the cookies are `__Host-` cookies, always Secure: a browser then takes them only over
    HTTPS, for this exact host and path `/`, so neither a sibling subdomain nor a plain-HTTP page can plant
    or overwrite one. Development over plain HTTP keeps the bare names, Secure only over HTTPS."""

    production: bool

    @property
    def session(self) -> str:
        return f"{HOST_PREFIX}{SESSION_COOKIE}" if self.production else SESSION_COOKIE

    @property
    def csrf(self) -> str:
        return f"{HOST_PREFIX}{CSRF_COOKIE}" if self.production else CSRF_COOKIE

    def secure(self, request: Request) -> bool:
        return self.production or request_scheme(request) == "https"


def cookie_policy(request: Request) -> CookiePolicy:
    policy: CookiePolicy = request.app.state.cookie_policy
    return policy


def request_scheme(request: Request) -> str:
    """http or https as the browser sees it: a TLS-terminating proxy says so in X-Forwarded-Proto."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return forwarded if forwarded in ("http", "https") else request.url.scheme


def request_origin(request: Request) -> str:
    host = request.headers.get("host") or request.url.netloc
    return f"{request_scheme(request)}://{host}".lower()


def new_csrf_token() -> str:
    return secrets.token_urlsafe(_CSRF_TOKEN_BYTES)


def set_csrf_cookie(response: Response, request: Request, token: str) -> None:
    # Not HttpOnly: the console's JavaScript reads it to send it back as X-CSRF-Token.
    policy = cookie_policy(request)
    response.set_cookie(
        policy.csrf,
        token,
        max_age=CSRF_MAX_AGE_S,
        path="/",
        secure=policy.secure(request),
        httponly=False,
        samesite="lax",
    )


def set_session_cookie(response: Response, request: Request, token: str, max_age_s: int) -> None:
    policy = cookie_policy(request)
    response.set_cookie(
        policy.session,
        token,
        max_age=max_age_s,
        path="/",
        secure=policy.secure(request),
        httponly=True,
        samesite="lax",
    )


def clear_session_cookies(response: Response, request: Request) -> None:
    policy = cookie_policy(request)
    for name, httponly in ((policy.session, True), (policy.csrf, False)):
        response.delete_cookie(
            name, path="/", secure=policy.secure(request), httponly=httponly, samesite="lax"
        )


def _same_origin(request: Request) -> bool:
    """False when the request names another origin in Origin (or, without it, in Referer)."""
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if not referer:
            return True
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin.lower() == request_origin(request)


def csrf_failure(request: Request, sent_token: str | None) -> str | None:
    """Why an unsafe cookie-authenticated request is refused, or None when it passes both checks."""
    expected = request.cookies.get(cookie_policy(request).csrf, "")
    if not expected or not sent_token:
        name = cookie_policy(request).csrf
        return f"a request authenticated by the session cookie must send the {name} cookie's value"
    if not hmac.compare_digest(expected.encode(), sent_token.encode()):
        return "the CSRF token does not match the session's"
    if not _same_origin(request):
        return "the request comes from another origin"
    return None


def check_csrf(request: Request, sent_token: str | None) -> None:
    """403 `csrf_failed` unless the request passes the double-submit and the same-origin checks."""
    reason = csrf_failure(request, sent_token)
    if reason is not None:
        raise ApiError(status.HTTP_403_FORBIDDEN, "csrf_failed", reason)
