"""Verifying the webhooks the API sends, as Standard Webhooks defines it (https://www.standardwebhooks.com).

The signature is `v1,` and the base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` under the
key that the `whsec_<base64>` secret encodes; the header may carry several, space-separated (during a
secret rotation). The timestamp must be within five minutes of now, so a captured request cannot be replayed
later.
"""

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any, Final

SECRET_PREFIX: Final = "whsec_"
SIGNATURE_VERSION: Final = "v1"
DEFAULT_TOLERANCE_S: Final = 5 * 60


class WebhookVerificationError(Exception):
    """The request is not a genuine, fresh webhook from the API: do not act on it."""


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        # Padding is optional in secrets, as other Standard Webhooks libraries accept them.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise WebhookVerificationError("the secret is not `whsec_` and base64") from exc
    if not key:
        raise WebhookVerificationError("the secret is empty")
    return key


def _header(headers: Mapping[str, str], name: str) -> str:
    # HTTP header names are case-insensitive; a plain dict from a framework may keep any case.
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"the {name} header is missing")


def _check_timestamp(value: str, tolerance_s: float, now: float) -> None:
    try:
        timestamp = int(value)
    except ValueError as exc:
        raise WebhookVerificationError("the webhook-timestamp header is not a Unix time") from exc
    if timestamp < now - tolerance_s:
        raise WebhookVerificationError("the message is too old")
    if timestamp > now + tolerance_s:
        raise WebhookVerificationError("the message's timestamp is in the future")


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> dict[str, Any]:
    """The webhook's JSON payload, once its signature and timestamp are checked; raises
    WebhookVerificationError otherwise. Pass the body exactly as received: re-serialised JSON will not match.
    """
    raw = body.encode() if isinstance(body, str) else body
    msg_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    _check_timestamp(timestamp, tolerance_s, time.time())
    signed = f"{msg_id}.{timestamp}.".encode() + raw
    expected = base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest())
    matched = False
    for candidate in signatures.split():
        version, _, signature = candidate.partition(",")
        # Every candidate is compared, so the time taken does not tell which one came close.
        if version == SIGNATURE_VERSION and hmac.compare_digest(signature.encode(), expected):
            matched = True
    if not matched:
        raise WebhookVerificationError("no signature matches")
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WebhookVerificationError("the body is not JSON") from exc
    if not isinstance(payload, dict):
        raise WebhookVerificationError("the body is not a JSON object")
    return payload
