"""The auth service answers errors in the same format as the gateway (shared.api_errors)."""

from emotion_contract.errors import ErrorResponse
from shared.api_errors import ApiError, error_response, error_responses, install_error_handlers

__all__ = ["ApiError", "ErrorResponse", "error_response", "error_responses", "install_error_handlers"]
