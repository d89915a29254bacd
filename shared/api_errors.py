"""Every error the HTTP services return has one shape, `{"error": {"code", "message"}}` (the contract's
`ErrorResponse`), with a stable code.

The gateway and the auth service both install these handlers, so a client meets one error format.
"""

import logging
from collections.abc import Sequence
from typing import Any, Final

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from emotion_contract.errors import ErrorDetail, ErrorResponse

logger = logging.getLogger(__name__)

_CODES_BY_STATUS: Final = {
    status.HTTP_400_BAD_REQUEST: "bad_request",
    status.HTTP_401_UNAUTHORIZED: "unauthorized",
    status.HTTP_403_FORBIDDEN: "forbidden",
    status.HTTP_404_NOT_FOUND: "not_found",
    status.HTTP_405_METHOD_NOT_ALLOWED: "method_not_allowed",
    status.HTTP_413_CONTENT_TOO_LARGE: "file_too_large",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "unsupported_media_type",
    status.HTTP_409_CONFLICT: "conflict",
    status.HTTP_422_UNPROCESSABLE_CONTENT: "validation_error",
    status.HTTP_429_TOO_MANY_REQUESTS: "too_many_requests",
    status.HTTP_503_SERVICE_UNAVAILABLE: "unavailable",
}

_HTTP_METHODS: Final = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


class BodyTooLarge(StarletteHTTPException):
    """The request's body passed its route's limit (shared.body_limit). An HTTPException, so that FastAPI's
    body parsing passes it on as it is instead of turning it into a 400."""

    code: Final = "body_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"the request body is larger than this route accepts ({limit} bytes)",
            headers={"Connection": "close"},
        )


class ApiError(Exception):
    """Raised by routes and dependencies; becomes an ErrorResponse with this status and code."""

    def __init__(
        self, status_code: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers


def error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(code=code, message=message, details=details))
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code, headers=headers)


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry that documents these error statuses in the OpenAPI schema."""
    return {code: {"model": ErrorResponse} for code in status_codes}


def _location(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.code, exc.message, headers=exc.headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at the request's path: Starlette's 405 names only the first route's.
    Asked of the routes by trying each method, since included routers nest theirs."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _HTTP_METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    )


def _undecodable_body() -> JSONResponse:
    # FastAPI answers a body that is not JSON with 422 but one that is not even UTF-8 with a bare 400: both
    # are the same client mistake, so both get the validation error.
    message = "the body is not UTF-8 encoded JSON"
    return error_response(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        "validation_error",
        f"body: {message}",
        details=[{"loc": ["body"], "message": message, "type": "json_invalid"}],
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == status.HTTP_400_BAD_REQUEST and isinstance(exc.__cause__, UnicodeDecodeError):
        return _undecodable_body()
    code = exc.code if isinstance(exc, BodyTooLarge) else _CODES_BY_STATUS.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers is not None else {}
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        headers["Allow"] = _allowed_methods(request)
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": [str(part) for part in error["loc"]], "message": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    message = "; ".join(f"{_location(error['loc'])}: {error['msg']}" for error in exc.errors())
    return error_response(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        "validation_error",
        message or "invalid request",
        details=details,
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(status.HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
