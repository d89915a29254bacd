"""Standard Webhooks signatures (https://www.standardwebhooks.com): HMAC-SHA256 over `id.timestamp.body`."""

import base64
import binascii
import hashlib
import hmac
from typing import Final

from ..db.webhook_subscriptions import SECRET_PREFIX

SIGNATURE_VERSION: Final = "v1"
CONTENT_TYPE: Final = "application/json"


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_<base64>` secret stands for."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret is base64 after its prefix") from exc
    if not key:
        raise ValueError("a webhook secret must not be empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,` and the base64 HMAC-SHA256 of `{msg_id}.{timestamp}.{body}`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers that make `body` a signed Standard Webhooks message; `timestamp` in Unix seconds."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": CONTENT_TYPE,
    }
