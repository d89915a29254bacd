"""Examples of the API with this server's address and the visitor's key prefix filled in."""

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from ..api.deps import GatewayDep
from . import accounts
from .cookies import request_scheme
from .pages import CONSOLE, SignedIn, render, to_login

router = APIRouter(include_in_schema=False)


@router.get(f"{CONSOLE}/examples", response_class=HTMLResponse)
async def examples_page(request: Request, visitor: SignedIn, gateway: GatewayDep) -> Response:
    try:
        keys = (await accounts.list_keys(gateway, visitor.token)).items
    except accounts.AccountServiceError as exc:
        if exc.session_ended:
            raise to_login(request, ended=True) from exc
        keys = []
    active = [key for key in keys if key.revoked_at is None]
    context = {
        "signed_in": True,
        "nav": "examples",
        "base_url": str(request.base_url.replace(scheme=request_scheme(request))).rstrip("/"),
        "key_prefix": active[0].prefix if active else None,
    }
    return render(request, "examples.html", context)
