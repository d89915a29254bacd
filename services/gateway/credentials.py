"""Who a bearer credential belongs to: asked of the auth service, remembered for a few seconds.

The cache is what keeps an authenticated request nearly as cheap as an anonymous one. It is keyed by a
digest of the credential (the secret itself is never kept), bounded in size, and an entry lives at most
`ttl_s`, which bounds how long a revoked key or a logged-out session keeps working. Concurrent misses for
one credential share one call to the auth service.
"""

import asyncio
import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx

from emotion_contract.accounts import CredentialKind, Introspection, IntrospectRequest, Limits

INTERNAL_TOKEN_HEADER: Final = "X-Internal-Token"


class AuthUnavailableError(Exception):
    """The auth service could not be asked; the request cannot be authenticated either way."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    user_id: uuid.UUID
    kind: CredentialKind
    credential_id: uuid.UUID
    limits: Limits

    @property
    def owner(self) -> str:
        """The owner id that jobs, uploads, usage and webhooks are stored under."""
        return str(self.user_id)


def principal_of(answer: Introspection) -> Principal | None:
    if not answer.active or answer.user_id is None or answer.kind is None:
        return None
    if answer.credential_id is None or answer.limits is None:
        return None
    return Principal(
        user_id=answer.user_id, kind=answer.kind, credential_id=answer.credential_id, limits=answer.limits
    )


Introspect = Callable[[str], Awaitable[Introspection]]


class CredentialCache:
    def __init__(
        self, introspect: Introspect, *, ttl_s: float, negative_ttl_s: float, max_entries: int = 10_000
    ) -> None:
        if ttl_s < 0 or negative_ttl_s < 0:
            raise ValueError("cache lifetimes must not be negative")
        self._introspect = introspect
        self._ttl_s = ttl_s
        self._negative_ttl_s = negative_ttl_s
        self._max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[float, Principal | None]] = OrderedDict()
        self._pending: dict[bytes, asyncio.Future[Principal | None]] = {}

    async def principal(self, credential: str) -> Principal | None:
        """The credential's principal, or None when it is not valid (now, or within the cache lifetime)."""
        digest = hashlib.sha256(credential.encode()).digest()
        now = time.monotonic()
        cached = self._entries.get(digest)
        if cached is not None and cached[0] > now:
            self._entries.move_to_end(digest)
            return cached[1]
        pending = self._pending.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Principal | None] = asyncio.get_running_loop().create_future()
        self._pending[digest] = future
        try:
            principal = principal_of(await self._introspect(credential))
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so no "never retrieved" warning when nobody else waited
            raise
        finally:
            del self._pending[digest]
        future.set_result(principal)
        self._store(digest, principal)
        return principal

    def knows(self, credential: str) -> bool:
        """Whether the credential's answer is cached (no introspection would be made for it now)."""
        cached = self._entries.get(hashlib.sha256(credential.encode()).digest())
        return cached is not None and cached[0] > time.monotonic()

    def forget(self, credential: str) -> None:
        """Drop a credential this replica was told is gone (logout through this gateway)."""
        self._entries.pop(hashlib.sha256(credential.encode()).digest(), None)

    def forget_credential_id(self, credential_id: uuid.UUID) -> None:
        """Drop every cached credential with this id (a key revoked through this gateway)."""
        for digest in [d for d, (_, p) in self._entries.items() if p and p.credential_id == credential_id]:
            del self._entries[digest]

    def _store(self, digest: bytes, principal: Principal | None) -> None:
        ttl = self._ttl_s if principal is not None else self._negative_ttl_s
        if ttl == 0:
            return
        self._entries[digest] = (time.monotonic() + ttl, principal)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


class AuthClient:
    """The auth service's HTTP API, for introspection and for relaying the account routes."""

    def __init__(self, base_url: str, *, internal_token: str | None, timeout_s: float) -> None:
        headers = {INTERNAL_TOKEN_HEADER: internal_token} if internal_token else {}
        self.http = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    async def introspect(self, token: str) -> Introspection:
        try:
            response = await self.http.post(
                "/v1/introspect", json=IntrospectRequest(token=token).model_dump()
            )
        except httpx.HTTPError as exc:
            raise AuthUnavailableError(f"the auth service did not answer: {exc!r}") from exc
        if response.status_code != httpx.codes.OK:
            raise AuthUnavailableError(f"the auth service answered {response.status_code} to introspection")
        return Introspection.model_validate_json(response.content)

    async def send(
        self, method: str, path: str, *, authorization: str | None = None, json: Any = None
    ) -> httpx.Response:
        """A call to the auth service's account API on the caller's behalf; any answer below 500.

        Raises AuthUnavailableError when the service cannot be reached or fails (5xx).
        """
        headers = {"Authorization": authorization} if authorization else {}
        try:
            answer = await self.http.request(method, path, json=json, headers=headers)
        except httpx.HTTPError as exc:
            raise AuthUnavailableError("the account service is unreachable") from exc
        if answer.status_code >= httpx.codes.INTERNAL_SERVER_ERROR:
            raise AuthUnavailableError("the account service failed")
        return answer

    async def aclose(self) -> None:
        await self.http.aclose()
