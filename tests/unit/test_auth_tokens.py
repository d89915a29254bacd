"""Session JWTs: round trip, expiry, issuer, and tokens signed otherwise (services/auth/tokens.py)."""

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from services.auth.tokens import InvalidTokenError, SessionClaims, SessionTokens

SECRET = "unit-test-jwt-secret-0123456789abcdef"
ISSUER = "test-issuer"
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _claims(lifetime: timedelta = timedelta(hours=1), issued_at: datetime = NOW) -> SessionClaims:
    return SessionClaims(
        user_id=uuid.uuid4(), session_id=uuid.uuid4(), issued_at=issued_at, expires_at=issued_at + lifetime
    )


def _segments(token: str) -> list[dict[str, object]]:
    def decoded(part: str) -> dict[str, object]:
        value: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return value

    header, payload, _ = token.split(".")
    return [decoded(header), decoded(payload)]


def test_a_token_round_trips_its_claims() -> None:
    tokens = SessionTokens(secret=SECRET, issuer=ISSUER)
    claims = _claims()
    token = tokens.encode(claims)
    assert tokens.decode(token, now=NOW + timedelta(minutes=1)) == claims
    header, payload = _segments(token)
    assert header["alg"] == "HS256"
    assert payload == {
        "iss": ISSUER,
        "sub": str(claims.user_id),
        "jti": str(claims.session_id),
        "iat": int(NOW.timestamp()),
        "exp": int(claims.expires_at.timestamp()),
    }


def test_an_expired_token_is_refused() -> None:
    tokens = SessionTokens(secret=SECRET, issuer=ISSUER)
    claims = _claims(lifetime=timedelta(minutes=5))
    token = tokens.encode(claims)
    assert tokens.decode(token, now=claims.expires_at - timedelta(seconds=1)) == claims
    with pytest.raises(InvalidTokenError):
        tokens.decode(token, now=claims.expires_at)


def test_a_token_of_another_secret_or_issuer_is_refused() -> None:
    claims = _claims()
    forged = SessionTokens(secret="another-secret-0123456789abcdefghij", issuer=ISSUER).encode(claims)
    foreign = SessionTokens(secret=SECRET, issuer="someone-else").encode(claims)
    tokens = SessionTokens(secret=SECRET, issuer=ISSUER)
    for token in (forged, foreign):
        with pytest.raises(InvalidTokenError):
            tokens.decode(token, now=NOW)


def test_a_tampered_payload_is_refused() -> None:
    tokens = SessionTokens(secret=SECRET, issuer=ISSUER)
    header, payload, signature = tokens.encode(_claims()).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = str(uuid.uuid4())
    tampered = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidTokenError):
        tokens.decode(f"{header}.{tampered}.{signature}", now=NOW)


def test_tokens_with_another_algorithm_are_refused() -> None:
    """HS512 under the same secret, and an unsigned token (`alg: none`): only HS256 is accepted."""
    tokens = SessionTokens(secret=SECRET, issuer=ISSUER)
    payload = {
        "iss": ISSUER,
        "sub": str(uuid.uuid4()),
        "jti": str(uuid.uuid4()),
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(hours=1)).timestamp()),
    }
    hs512 = jwt.encode({"alg": "HS512"}, payload, OctKey.import_key(SECRET), algorithms=["HS512"])

    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    unsigned = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."
    for token in (hs512, unsigned):
        with pytest.raises(InvalidTokenError):
            tokens.decode(token, now=NOW)


@pytest.mark.parametrize("missing", ["iss", "sub", "jti", "iat", "exp"])
def test_a_token_missing_a_claim_is_refused(missing: str) -> None:
    payload: dict[str, object] = {
        "iss": ISSUER,
        "sub": str(uuid.uuid4()),
        "jti": str(uuid.uuid4()),
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(hours=1)).timestamp()),
    }
    del payload[missing]
    token = jwt.encode({"alg": "HS256"}, payload, OctKey.import_key(SECRET), algorithms=["HS256"])
    with pytest.raises(InvalidTokenError):
        SessionTokens(secret=SECRET, issuer=ISSUER).decode(token, now=NOW)


def test_a_subject_that_is_no_user_id_is_refused() -> None:
    payload = {
        "iss": ISSUER,
        "sub": "admin",
        "jti": str(uuid.uuid4()),
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(hours=1)).timestamp()),
    }
    token = jwt.encode({"alg": "HS256"}, payload, OctKey.import_key(SECRET), algorithms=["HS256"])
    with pytest.raises(InvalidTokenError):
        SessionTokens(secret=SECRET, issuer=ISSUER).decode(token, now=NOW)


@pytest.mark.parametrize("garbage", ["", "not a token", "a.b.c", "ea_3fA9kQ2x_" + "A" * 32, "." * 3])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(InvalidTokenError):
        SessionTokens(secret=SECRET, issuer=ISSUER).decode(garbage, now=NOW)
