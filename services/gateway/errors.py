"""The gateway's errors: the shared error format, plus what every authenticated route can answer."""

from typing import Any

from fastapi import status

from emotion_contract.errors import ErrorResponse
from shared.api_errors import ApiError, error_response, error_responses, install_error_handlers

__all__ = [
    "ApiError",
    "ErrorResponse",
    "authenticated_responses",
    "error_response",
    "error_responses",
    "install_error_handlers",
]


def authenticated_responses() -> dict[int | str, dict[str, Any]]:
    """Errors any authenticated route can answer: no valid credential, a session cookie without CSRF proof
    (403 `csrf_failed`), over the rate, auth unreachable."""
    return error_responses(
        status.HTTP_401_UNAUTHORIZED,
        status.HTTP_403_FORBIDDEN,
        status.HTTP_429_TOO_MANY_REQUESTS,
        status.HTTP_503_SERVICE_UNAVAILABLE,
    )
