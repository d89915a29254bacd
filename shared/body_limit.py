"""A limit on request bodies, for every route of an HTTP service: small by default, larger where a route
takes a file. Applied before anything reads the body, so an unauthenticated client cannot make a service
buffer 300 MB of JSON: a declared Content-Length over the limit is refused at once, and a body sent
without one (chunked) is cut off as soon as it passes the limit.
"""

from collections.abc import Mapping
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.api_errors import BodyTooLarge, error_response

DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024


class BodyLimitMiddleware:
    """`routes` maps (method, path) to its own limit; every other request gets `default_bytes`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        default_bytes: int = DEFAULT_MAX_BODY_BYTES,
        routes: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        self.app = app
        self.default_bytes = default_bytes
        self.routes = dict(routes or {})

    def limit_for(self, method: str, path: str) -> int:
        return self.routes.get((method, path.rstrip("/") or "/"), self.default_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            refused = BodyTooLarge(limit)
            # The body is not read: the connection closes after the answer instead of draining it.
            headers = dict(refused.headers or {})
            response = error_response(refused.status_code, refused.code, refused.detail, headers=headers)
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside whatever reads the body; the services' error handlers answer it.
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)
