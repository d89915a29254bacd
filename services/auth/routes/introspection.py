"""Introspection (after RFC 7662) for the gateway: is this credential active, and whose is it."""

from fastapi import APIRouter, Depends, status

from emotion_contract.accounts import Introspection, IntrospectRequest

from ..credentials import authenticate, introspection_of, kind_of
from ..deps import SessionDep, StateDep, require_internal_token
from ..errors import error_responses

router = APIRouter(tags=["internal"])


@router.post(
    "/introspect",
    responses=error_responses(status.HTTP_403_FORBIDDEN, status.HTTP_422_UNPROCESSABLE_CONTENT),
    # A route-level dependency runs before the body is validated and a database session is opened.
    dependencies=[Depends(require_internal_token)],
    # An inactive answer is `{"active": false}` alone, as RFC 7662 has it.
    response_model_exclude_none=True,
)
async def introspect(
    body: IntrospectRequest,
    state: StateDep,
    session: SessionDep,
) -> Introspection:
    """Whether an API key or session token is active now, whose it is and the limits that apply."""
    principal = await authenticate(body.token, state=state, session=session)
    state.metrics.introspections.labels(kind_of(body.token).value, str(principal is not None).lower()).inc()
    return introspection_of(principal, state)
