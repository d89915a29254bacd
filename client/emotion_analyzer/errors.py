"""Every error answer of the API, `{"error": {"code", "message"}}`, as an exception carrying its code."""

import json
import re
from typing import Any, Final

import httpx


class ApiError(Exception):
    """The API refused a request. `code` is the API's stable machine-readable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: httpx.Headers | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers if headers is not None else httpx.Headers()


class BadRequest(ApiError):
    """400."""


class Unauthorized(ApiError):
    """401: no credential, or one that is unknown, revoked or expired (or a wrong password at log-in)."""


class Forbidden(ApiError):
    """403: e.g. a disabled account."""


class NotFound(ApiError):
    """404: nothing of yours has this id (another user's resources answer the same)."""


class Conflict(ApiError):
    """409: e.g. an email already taken, an analysis still in progress, too many webhooks."""


class PayloadTooLarge(ApiError):
    """413."""


class UnsupportedMediaType(ApiError):
    """415: not a video or audio file."""


class InvalidRequest(ApiError):
    """422: a body that fails validation, an empty or corrupt file, an invalid webhook URL."""


class RateLimited(ApiError):
    """429 over the key's request rate; `retry_after` is the number of seconds to wait, when given."""

    @property
    def retry_after(self) -> float | None:
        value = self.headers.get("retry-after")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


class QuotaExceeded(RateLimited):
    """429 over the account's monthly quota of analyses or video seconds."""


class ServiceUnavailable(ApiError):
    """503: a part of the system (the auth service, the broker) cannot be reached; try again later."""


class ServerError(ApiError):
    """Any other 5xx."""


class UploadFailed(ApiError):
    """The object store refused the PUT of a presigned upload (expired URL, size, signature)."""


_BY_CODE: Final[dict[str, type[ApiError]]] = {
    "quota_exceeded": QuotaExceeded,
    "rate_limited": RateLimited,
}
_BY_STATUS: Final[dict[int, type[ApiError]]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidRequest,
    429: RateLimited,
    503: ServiceUnavailable,
}
_MAX_MESSAGE_CHARS: Final = 500
_S3_CODE = re.compile(r"<Code>([^<]+)</Code>")
_S3_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")


def error_from_response(response: httpx.Response) -> ApiError:
    """The exception for an error answer; an answer not in the API's shape (a proxy's page) still gets one."""
    status = response.status_code
    code, message, details = f"http_{status}", response.text[:_MAX_MESSAGE_CHARS], None
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        code = error["code"]
        message = str(error.get("message", ""))
        raw_details = error.get("details")
        details = raw_details if isinstance(raw_details, list) else None
    kind = _BY_CODE.get(code) or _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return kind(status, code, message, details=details, headers=response.headers)


def upload_error_from_response(response: httpx.Response) -> UploadFailed:
    """The object store answers errors in S3's XML: `<Error><Code>…</Code><Message>…</Message></Error>`."""
    text = response.text
    code = _S3_CODE.search(text)
    message = _S3_MESSAGE.search(text)
    return UploadFailed(
        response.status_code,
        code.group(1) if code else f"http_{response.status_code}",
        message.group(1) if message else text[:_MAX_MESSAGE_CHARS],
        headers=response.headers,
    )


def raise_for_error(response: httpx.Response) -> None:
    if response.is_error:
        raise error_from_response(response)


class WaitTimeout(TimeoutError):
    """The analysis did not finish in time; `last_seen` is its latest state, when one was read."""

    def __init__(self, analysis_id: str, timeout_s: float, last_seen: Any = None) -> None:
        super().__init__(f"analysis {analysis_id} did not finish within {timeout_s:g} s")
        self.analysis_id = analysis_id
        self.last_seen = last_seen
