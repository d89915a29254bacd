"""Our Standard Webhooks signatures, checked by the reference implementation (`standardwebhooks`)."""

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.gateway.db.webhook_subscriptions import SECRET_PREFIX, new_secret
from services.gateway.webhooks.signing import headers, secret_key, sign

BODY = json.dumps({"type": "webhook.test", "timestamp": "2025-01-01T00:00:00Z", "data": {"n": 1}}).encode()
MSG_ID = "6f1c8a9e-5c0b-4f59-9a1e-2d3b4c5d6e7f"


def test_a_new_secret_is_whsec_and_32_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith(SECRET_PREFIX)
    assert len(base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)) == 32
    assert secret != new_secret()


def test_the_reference_verifier_accepts_our_signature() -> None:
    secret = new_secret()
    signed = headers(secret, MSG_ID, int(time.time()), BODY)
    assert Webhook(secret).verify(BODY, signed) == json.loads(BODY)
    assert signed["webhook-id"] == MSG_ID and signed["content-type"] == "application/json"


def test_a_tampered_body_fails_verification() -> None:
    secret = new_secret()
    signed = headers(secret, MSG_ID, int(time.time()), BODY)
    tampered = BODY.replace(b'"n": 1', b'"n": 2')
    assert tampered != BODY
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, signed)


def test_another_id_timestamp_or_secret_fails_verification() -> None:
    secret = new_secret()
    now = int(time.time())
    signed = headers(secret, MSG_ID, now, BODY)
    verifier = Webhook(secret)
    with pytest.raises(WebhookVerificationError):
        verifier.verify(BODY, {**signed, "webhook-id": "another-id"})
    with pytest.raises(WebhookVerificationError):
        verifier.verify(BODY, {**signed, "webhook-timestamp": str(now - 1)})
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, signed)


def test_the_signature_is_the_reference_one_byte_for_byte() -> None:
    secret = new_secret()
    timestamp = 1_700_000_000
    expected = Webhook(secret).sign(MSG_ID, datetime.fromtimestamp(timestamp, UTC), BODY.decode())
    assert sign(secret, MSG_ID, timestamp, BODY) == expected
    assert expected.startswith("v1,")


@pytest.mark.parametrize("secret", ["no-prefix", "whsec_", "whsec_not base64!"])
def test_malformed_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValueError):
        secret_key(secret)
