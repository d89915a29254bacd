"""The client's `verify_webhook` against signatures made by two independent signers: the reference Standard
Webhooks implementation (PyPI `standardwebhooks`) and the gateway's own."""

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from emotion_analyzer import WebhookVerificationError, verify_webhook
from services.gateway.db.webhook_subscriptions import new_secret
from services.gateway.webhooks.signing import headers as gateway_headers

BODY = json.dumps(
    {"type": "analysis.completed", "timestamp": "2025-01-01T00:00:00Z", "data": {"n": 1}}
).encode()
MSG_ID = "msg_2f1c8a9e5c0b4f59"


def reference_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


SIGNERS = {"standardwebhooks": reference_headers, "gateway": gateway_headers}


@pytest.fixture(params=sorted(SIGNERS))
def signer(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def signed(signer: str, secret: str, *, timestamp: int | None = None, body: bytes = BODY) -> dict[str, str]:
    return SIGNERS[signer](secret, MSG_ID, int(time.time()) if timestamp is None else timestamp, body)


def test_a_genuine_webhook_verifies_and_gives_its_payload(signer: str) -> None:
    secret = new_secret()
    assert verify_webhook(secret, signed(signer, secret), BODY) == json.loads(BODY)
    assert verify_webhook(secret, signed(signer, secret), BODY.decode()) == json.loads(BODY)


def test_header_names_are_matched_whatever_their_case(signer: str) -> None:
    secret = new_secret()
    shouted = {name.upper(): value for name, value in signed(signer, secret).items()}
    assert verify_webhook(secret, shouted, BODY)["data"] == {"n": 1}


def test_a_tampered_body_fails(signer: str) -> None:
    secret = new_secret()
    tampered = BODY.replace(b'"n": 1', b'"n": 2')
    assert tampered != BODY
    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        verify_webhook(secret, signed(signer, secret), tampered)


def test_a_wrong_secret_fails(signer: str) -> None:
    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        verify_webhook(new_secret(), signed(signer, new_secret()), BODY)


def test_another_message_id_fails(signer: str) -> None:
    secret = new_secret()
    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        verify_webhook(secret, {**signed(signer, secret), "webhook-id": "msg_other"}, BODY)


def test_a_timestamp_outside_five_minutes_fails_even_when_signed(signer: str) -> None:
    secret = new_secret()
    now = int(time.time())
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook(secret, signed(signer, secret, timestamp=now - 6 * 60), BODY)
    with pytest.raises(WebhookVerificationError, match="future"):
        verify_webhook(secret, signed(signer, secret, timestamp=now + 6 * 60), BODY)
    assert verify_webhook(secret, signed(signer, secret, timestamp=now - 4 * 60), BODY)


def test_a_re_stamped_message_fails() -> None:
    """Moving a captured request's timestamp to now, to get past the tolerance, breaks its signature."""
    secret = new_secret()
    old = signed("gateway", secret, timestamp=int(time.time()) - 3600)
    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        verify_webhook(secret, {**old, "webhook-timestamp": str(int(time.time()))}, BODY)


def test_one_matching_signature_among_several_is_enough() -> None:
    """During a secret rotation the header carries a signature under each secret."""
    old_secret, new = new_secret(), new_secret()
    headers = signed("standardwebhooks", new)
    by_old = signed("standardwebhooks", old_secret)["webhook-signature"]
    rotated = {**headers, "webhook-signature": f"v2,abc {by_old} {headers['webhook-signature']}"}
    assert verify_webhook(new, rotated, BODY) == json.loads(BODY)
    assert verify_webhook(old_secret, rotated, BODY) == json.loads(BODY)
    only_other_versions = {**headers, "webhook-signature": headers["webhook-signature"].replace("v1,", "v2,")}
    with pytest.raises(WebhookVerificationError):
        verify_webhook(new, only_other_versions, BODY)


def test_an_unpadded_secret_is_the_same_key() -> None:
    key = bytes(range(17))  # 17 bytes: its base64 ends in padding
    padded = "whsec_" + base64.b64encode(key).decode()
    assert padded.endswith("=")
    headers = signed("gateway", padded)
    assert verify_webhook(padded.rstrip("="), headers, BODY) == json.loads(BODY)
    assert verify_webhook(padded.removeprefix("whsec_"), headers, BODY) == json.loads(BODY)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_fails(missing: str) -> None:
    secret = new_secret()
    headers = {name: value for name, value in signed("gateway", secret).items() if name != missing}
    with pytest.raises(WebhookVerificationError, match=missing):
        verify_webhook(secret, headers, BODY)


def test_malformed_inputs_fail_with_the_verification_error() -> None:
    secret = new_secret()
    with pytest.raises(WebhookVerificationError, match="Unix time"):
        verify_webhook(secret, {**signed("gateway", secret), "webhook-timestamp": "yesterday"}, BODY)
    with pytest.raises(WebhookVerificationError, match="base64"):
        verify_webhook("whsec_not base64!", signed("gateway", secret), BODY)
    not_json = b"plain text"
    with pytest.raises(WebhookVerificationError, match="not JSON"):
        verify_webhook(secret, signed("gateway", secret, body=not_json), not_json)
    a_list = b"[1, 2]"
    with pytest.raises(WebhookVerificationError, match="not a JSON object"):
        verify_webhook(secret, signed("gateway", secret, body=a_list), a_list)
