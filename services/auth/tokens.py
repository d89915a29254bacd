"""Session JWTs (HS256): `sub` is the user, `jti` the auth_session row that logging out revokes.

The JOSE code is joserfc, the successor of `authlib.jose` by the same authors (Authlib depends on it and
deprecates its own module). Decoding accepts HS256 only, so a token cannot pick a weaker algorithm (`none`).
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

ALGORITHM: Final = "HS256"


class InvalidTokenError(Exception):
    """The token is malformed, forged, expired or from another issuer."""


@dataclass(frozen=True)
class SessionClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    issued_at: datetime
    expires_at: datetime


class SessionTokens:
    def __init__(self, *, secret: str, issuer: str) -> None:
        self._key = OctKey.import_key(secret)
        self.issuer = issuer

    def encode(self, claims: SessionClaims) -> str:
        payload = {
            "iss": self.issuer,
            "sub": str(claims.user_id),
            "jti": str(claims.session_id),
            "iat": int(claims.issued_at.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
        }
        return jwt.encode({"alg": ALGORITHM}, payload, self._key, algorithms=[ALGORITHM])

    def decode(self, token: str, *, now: datetime | None = None) -> SessionClaims:
        """The token's claims once its signature, issuer and expiry hold; InvalidTokenError otherwise."""
        at = int((now or datetime.now(UTC)).timestamp())
        expected = jwt.JWTClaimsRegistry(
            now=at,
            iss={"essential": True, "value": self.issuer},
            sub={"essential": True},
            jti={"essential": True},
            iat={"essential": True},
            exp={"essential": True},
        )
        try:
            decoded = jwt.decode(token, self._key, algorithms=[ALGORITHM])
            expected.validate(decoded.claims)
            claims = decoded.claims
            return SessionClaims(
                user_id=uuid.UUID(claims["sub"]),
                session_id=uuid.UUID(claims["jti"]),
                issued_at=datetime.fromtimestamp(claims["iat"], UTC),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            )
        except (JoseError, ValueError, TypeError, OverflowError) as exc:
            raise InvalidTokenError(str(exc) or type(exc).__name__) from exc
