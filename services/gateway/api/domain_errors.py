"""The HTTP answers of the gateway's domain errors: service code raises what went wrong in its own terms
(`IntakeError`s, `QuotaExceededError`), and this table turns it into a status, a code and headers."""

import math
from datetime import UTC, datetime, time

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from ..db.usage import QuotaExceededError
from ..errors import ApiError, error_response
from ..intake import (
    EmptyFile,
    FileTooLarge,
    IntakeError,
    InvalidCallbackUrl,
    UnknownUpload,
    UnreadableMedia,
    UnsupportedFile,
)
from ..url_fetch import InvalidUrl, UrlTooSlow, UrlUnreachable

STATUS_OF: dict[type[IntakeError], int] = {
    UnknownUpload: status.HTTP_404_NOT_FOUND,
    EmptyFile: status.HTTP_422_UNPROCESSABLE_CONTENT,
    FileTooLarge: status.HTTP_413_CONTENT_TOO_LARGE,
    UnsupportedFile: status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    UnreadableMedia: status.HTTP_422_UNPROCESSABLE_CONTENT,
    InvalidCallbackUrl: status.HTTP_422_UNPROCESSABLE_CONTENT,
    InvalidUrl: status.HTTP_422_UNPROCESSABLE_CONTENT,
    UrlUnreachable: status.HTTP_422_UNPROCESSABLE_CONTENT,
    UrlTooSlow: status.HTTP_422_UNPROCESSABLE_CONTENT,
}


def intake_refusal(exc: IntakeError) -> ApiError:
    return ApiError(STATUS_OF.get(type(exc), status.HTTP_422_UNPROCESSABLE_CONTENT), exc.code, exc.message)


def quota_exceeded(exc: QuotaExceededError) -> ApiError:
    """429 with Retry-After at the month's end, and RateLimit fields describing the monthly quota."""
    reset_s = max(1, math.ceil((exc.used.resets_at - datetime.now(UTC)).total_seconds()))
    month_s = int((exc.used.resets_at - datetime.combine(exc.used.period, time(), UTC)).total_seconds())
    headers = {
        "Retry-After": str(reset_s),
        "RateLimit-Limit": f"{exc.limit:g}",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": str(reset_s),
        "RateLimit-Policy": f'{exc.limit:g};w={month_s};name="{exc.resource.value}"',
    }
    return ApiError(status.HTTP_429_TOO_MANY_REQUESTS, "quota_exceeded", str(exc), headers=headers)


async def _answer(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IntakeError | QuotaExceededError)
    error = intake_refusal(exc) if isinstance(exc, IntakeError) else quota_exceeded(exc)
    return error_response(error.status_code, error.code, error.message, headers=error.headers)


def install_domain_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(IntakeError, _answer)
    app.add_exception_handler(QuotaExceededError, _answer)
