"""API keys: listed, created (the secret shown once) and revoked through the auth service."""

import uuid
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from emotion_contract.accounts import ApiKeyCreated

from ..api.deps import GatewayDep
from ..state import Gateway
from . import accounts
from .pages import CONSOLE, FORM_EXPIRED, SignedIn, Visitor, checked_form, error_page, field, render, to_login

router = APIRouter(include_in_schema=False)


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
            raise to_login(request, ended=True) from exc
        return error_page(request, exc.message, status.HTTP_503_SERVICE_UNAVAILABLE)
    context = {
        "signed_in": True,
        "nav": "keys",
        "keys": keys,
        "created": created,
        "message": message,
        "error": error,
    }
    return render(request, "keys.html", context, status_code=status_code)


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
    form, failure = await checked_form(request)
    if failure is not None:
        return await _keys_page(request, gateway, visitor, error=FORM_EXPIRED, status_code=403)
    name = field(form, "name") or "default"
    if len(name) > 100:
        error = "A key's name has at most 100 characters."
        return await _keys_page(request, gateway, visitor, error=error, status_code=422)
    try:
        created = await accounts.create_key(gateway, visitor.token, name)
    except accounts.AccountServiceError as exc:
        if exc.session_ended:
            raise to_login(request, ended=True) from exc
        return await _keys_page(request, gateway, visitor, error=exc.message, status_code=422)
    return await _keys_page(request, gateway, visitor, created=created, status_code=201)


@router.post(f"{CONSOLE}/keys/{{key_id}}/revoke")
async def revoke_key(request: Request, key_id: uuid.UUID, visitor: SignedIn, gateway: GatewayDep) -> Response:
    form, failure = await checked_form(request)
    if failure is not None:
        return await _keys_page(request, gateway, visitor, error=FORM_EXPIRED, status_code=403)
    try:
        await accounts.revoke_key(gateway, visitor.token, key_id)
    except accounts.AccountServiceError as exc:
        if exc.session_ended:
            raise to_login(request, ended=True) from exc
        return await _keys_page(request, gateway, visitor, error=exc.message, status_code=404)
    prefix = field(form, "prefix")[:64]
    location = f"{CONSOLE}/keys" + (f"?revoked={quote(prefix)}" if prefix else "")
    return RedirectResponse(location, status_code=status.HTTP_303_SEE_OTHER)
