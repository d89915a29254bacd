"""Each API operation as data: method, path, body and how to read the answer.

The sync and the async client send the same calls, so an endpoint's details are written once, here.
"""

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import httpx
from pydantic import BaseModel

from .models import (
    Analysis,
    AnalysisList,
    ApiKeyCreated,
    ApiKeyList,
    Delivery,
    DeliveryList,
    DeliveryQueued,
    Registration,
    SessionToken,
    UploadUrl,
    UsageReport,
    User,
    Webhook,
    WebhookCreated,
    WebhookEventType,
    WebhookList,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Id = uuid.UUID | str

API_PREFIX: Final = "/v1"
# The gateway's longest long poll (GET /v1/analyses/{id}?wait=).
MAX_LONG_POLL_S: Final = 60.0
USER_AGENT: Final = "emotion-analyzer-python/1"
DEFAULT_TIMEOUT_S: Final = 30.0
DEFAULT_WAIT_S: Final = 600.0
DEFAULT_EVENTS: Final = (WebhookEventType.ANALYSIS_COMPLETED, WebhookEventType.ANALYSIS_FAILED)


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    json: Any = None
    params: Mapping[str, str | int | float] | None = None
    read_timeout_s: float | None = None
    """Longer than the client's timeout where the server holds the answer back (the long poll)."""


def api_base(server: str) -> str:
    """The API's root for a server address given with or without the `/v1` prefix."""
    base = server.rstrip("/")
    return base if base.endswith(API_PREFIX) else base + API_PREFIX


def _model(kind: type[M]) -> Callable[[httpx.Response], M]:
    def parse(response: httpx.Response) -> M:
        return kind.model_validate_json(response.content)

    return parse


def _nothing(_: httpx.Response) -> None:
    return None


def _credentials(email: str, password: str) -> dict[str, str]:
    return {"email": email, "password": password}


# --- accounts ------------------------------------------------------------------------------------------


def sign_up(email: str, password: str) -> Call[Registration]:
    return Call("POST", "/users", _model(Registration), json=_credentials(email, password))


def log_in(email: str, password: str) -> Call[SessionToken]:
    return Call("POST", "/sessions", _model(SessionToken), json=_credentials(email, password))


def log_out() -> Call[None]:
    return Call("DELETE", "/sessions/current", _nothing)


def me() -> Call[User]:
    return Call("GET", "/users/me", _model(User))


def list_keys() -> Call[ApiKeyList]:
    return Call("GET", "/keys", _model(ApiKeyList))


def create_key(name: str) -> Call[ApiKeyCreated]:
    return Call("POST", "/keys", _model(ApiKeyCreated), json={"name": name})


def revoke_key(key_id: Id) -> Call[None]:
    return Call("DELETE", f"/keys/{key_id}", _nothing)


def usage() -> Call[UsageReport]:
    return Call("GET", "/usage", _model(UsageReport))


# --- uploads and analyses ------------------------------------------------------------------------------


def upload_url(filename: str, content_type: str | None) -> Call[UploadUrl]:
    body = {"filename": filename} | ({"content_type": content_type} if content_type else {})
    return Call("POST", "/upload-url", _model(UploadUrl), json=body)


def _options(callback_url: str | None, speakers: int | None) -> dict[str, str | int]:
    """What an analysis request may say besides its file; only what was given."""
    given = {"callback_url": callback_url, "speakers": speakers}
    return {name: value for name, value in given.items() if value is not None}


def create_analysis(key: str, callback_url: str | None = None, speakers: int | None = None) -> Call[Analysis]:
    body = {"key": key} | _options(callback_url, speakers)
    return Call("POST", "/analyses", _model(Analysis), json=body)


def create_analysis_of_url(
    url: str, callback_url: str | None = None, speakers: int | None = None
) -> Call[Analysis]:
    body = {"url": url} | _options(callback_url, speakers)
    return Call("POST", "/analyses", _model(Analysis), json=body)


def multipart_fields(callback_url: str | None, speakers: int | None = None) -> dict[str, str]:
    """The form fields sent beside a file."""
    return {name: str(value) for name, value in _options(callback_url, speakers).items()}


def get_analysis(analysis_id: Id, *, wait_s: float = 0.0) -> Call[Analysis]:
    if wait_s <= 0:
        return Call("GET", f"/analyses/{analysis_id}", _model(Analysis))
    wait_s = min(wait_s, MAX_LONG_POLL_S)
    return Call(
        "GET",
        f"/analyses/{analysis_id}",
        _model(Analysis),
        params={"wait": round(wait_s, 3)},
        read_timeout_s=wait_s + 30.0,
    )


def list_analyses(limit: int, offset: int) -> Call[AnalysisList]:
    return Call("GET", "/analyses", _model(AnalysisList), params={"limit": limit, "offset": offset})


def delete_analysis(analysis_id: Id) -> Call[None]:
    return Call("DELETE", f"/analyses/{analysis_id}", _nothing)


def events_path(analysis_id: Id) -> str:
    return f"/analyses/{analysis_id}/events"


# --- webhooks ------------------------------------------------------------------------------------------


def create_webhook(
    url: str, events: Sequence[WebhookEventType | str], description: str | None
) -> Call[WebhookCreated]:
    body: dict[str, Any] = {"url": url, "events": [str(event) for event in events]}
    if description is not None:
        body["description"] = description
    return Call("POST", "/webhooks", _model(WebhookCreated), json=body)


def list_webhooks() -> Call[WebhookList]:
    return Call("GET", "/webhooks", _model(WebhookList))


def get_webhook(webhook_id: Id) -> Call[Webhook]:
    return Call("GET", f"/webhooks/{webhook_id}", _model(Webhook))


def delete_webhook(webhook_id: Id) -> Call[None]:
    return Call("DELETE", f"/webhooks/{webhook_id}", _nothing)


def send_test_event(webhook_id: Id) -> Call[DeliveryQueued]:
    return Call("POST", f"/webhooks/{webhook_id}/test", _model(DeliveryQueued))


def list_deliveries(webhook_id: Id, limit: int, offset: int) -> Call[DeliveryList]:
    return Call(
        "GET",
        f"/webhooks/{webhook_id}/deliveries",
        _model(DeliveryList),
        params={"limit": limit, "offset": offset},
    )


def get_delivery(webhook_id: Id, delivery_id: Id) -> Call[Delivery]:
    return Call("GET", f"/webhooks/{webhook_id}/deliveries/{delivery_id}", _model(Delivery))


def redeliver(webhook_id: Id, delivery_id: Id) -> Call[DeliveryQueued]:
    return Call("POST", f"/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", _model(DeliveryQueued))
