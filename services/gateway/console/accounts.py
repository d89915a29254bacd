"""The console's calls to the auth service, with the session cookie's token as the bearer credential."""

import uuid
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from emotion_contract.accounts import ApiKeyCreated, ApiKeyList, Registration, SessionToken
from emotion_contract.errors import ErrorResponse

from ..credentials import AuthUnavailableError
from ..state import Gateway

Model = TypeVar("Model", bound=BaseModel)


class AccountServiceError(Exception):
    """The auth service refused the request (a message for the person), or could not be reached."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code

    @property
    def session_ended(self) -> bool:
        return self.status_code == httpx.codes.UNAUTHORIZED


async def _call(
    gateway: Gateway, method: str, path: str, *, token: str | None = None, json: Any = None
) -> httpx.Response:
    authorization = f"Bearer {token}" if token else None
    try:
        answer = await gateway.auth.send(method, path, authorization=authorization, json=json)
    except AuthUnavailableError as exc:
        raise AccountServiceError(f"{exc}; try again shortly", status_code=503) from exc
    if answer.status_code >= httpx.codes.BAD_REQUEST:
        raise AccountServiceError(_message_of(answer), status_code=answer.status_code)
    return answer


def _message_of(answer: httpx.Response) -> str:
    try:
        return ErrorResponse.model_validate_json(answer.content).error.message
    except ValueError:
        return f"the account service answered {answer.status_code}"


def _parsed(model: type[Model], answer: httpx.Response) -> Model:
    return model.model_validate_json(answer.content)


async def register(gateway: Gateway, email: str, password: str) -> Registration:
    body = {"email": email, "password": password}
    return _parsed(Registration, await _call(gateway, "POST", "/v1/users", json=body))


async def log_in(gateway: Gateway, email: str, password: str) -> SessionToken:
    body = {"email": email, "password": password}
    return _parsed(SessionToken, await _call(gateway, "POST", "/v1/sessions", json=body))


async def log_out(gateway: Gateway, token: str) -> None:
    await _call(gateway, "DELETE", "/v1/sessions/current", token=token)
    gateway.credentials.forget(token)


async def list_keys(gateway: Gateway, token: str) -> ApiKeyList:
    return _parsed(ApiKeyList, await _call(gateway, "GET", "/v1/keys", token=token))


async def create_key(gateway: Gateway, token: str, name: str) -> ApiKeyCreated:
    return _parsed(ApiKeyCreated, await _call(gateway, "POST", "/v1/keys", token=token, json={"name": name}))


async def revoke_key(gateway: Gateway, token: str, key_id: uuid.UUID) -> None:
    await _call(gateway, "DELETE", f"/v1/keys/{key_id}", token=token)
    # As the API's revoke route does: this replica refuses the key at once, not after its cache lifetime.
    gateway.credentials.forget_credential_id(key_id)
    gateway.credentials.forget_credential_id(key_id)
