"""A CORS front for the local S3 server, so a browser can PUT to a presigned URL as it can to MinIO.

`rclone serve s3` checks a SigV4 signature on every request, the browser's OPTIONS preflight included,
which no presigned URL covers, so browsers cannot upload to it directly. This front answers preflights
itself and passes every other request through unchanged, Host header included, so the signature rclone
checks is the one the gateway made for this address (it also says 206 for the ranges rclone answers with
200). Local stack only: MinIO and S3 do all this themselves.

    python -m shared.localstack.s3_cors --host 127.0.0.1 --port 19001 --upstream http://127.0.0.1:19000
"""

import argparse
import contextlib
from collections.abc import AsyncIterator
from typing import Final

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

# Connection-level headers belong to one hop; the rest pass through.
HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
)
ALLOWED_METHODS: Final = "GET, HEAD, PUT, POST, DELETE"
PREFLIGHT_MAX_AGE_S: Final = 3600


def cors_headers(origin: str | None) -> dict[str, str]:
    # Lower-case names: they replace the upstream's own (rclone sends `*`) instead of being sent twice.
    return {
        "access-control-allow-origin": origin or "*",
        "access-control-expose-headers": "ETag, Content-Length, Content-Range, Accept-Ranges",
        "vary": "Origin",
    }


def status_of(request: Request, answer: httpx.Response) -> int:
    """rclone answers a satisfied Range request with the range and its Content-Range, but status 200;
    media players wait for 206 Partial Content before they trust the range, so say 206."""
    ranged = "range" in request.headers and "content-range" in answer.headers
    return 206 if ranged and answer.status_code == 200 else answer.status_code


def create_app(upstream: str) -> Starlette:
    client = httpx.AsyncClient(base_url=upstream, timeout=httpx.Timeout(60.0, read=None), trust_env=False)

    async def preflight(request: Request) -> Response:
        requested = request.headers.get("access-control-request-headers", "*")
        headers = {
            **cors_headers(request.headers.get("origin")),
            "access-control-allow-methods": ALLOWED_METHODS,
            "access-control-allow-headers": requested,
            "access-control-max-age": str(PREFLIGHT_MAX_AGE_S),
        }
        return Response(status_code=204, headers=headers)

    async def forward(request: Request) -> Response:
        if request.method == "OPTIONS":
            return await preflight(request)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        body: AsyncIterator[bytes] | None = request.stream() if request.method in ("PUT", "POST") else None
        upstream_request = client.build_request(
            request.method,
            request.url.path,
            params=request.url.query,
            headers=headers,
            content=body,
        )
        answer = await client.send(upstream_request, stream=True)
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        kept.update(cors_headers(request.headers.get("origin")))
        return StreamingResponse(
            answer.aiter_raw(),
            status_code=status_of(request, answer),
            headers=kept,
            background=BackgroundTask(answer.aclose),
        )

    methods = ["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS"]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the S3 server's base URL")
    args = parser.parse_args()
    uvicorn.run(create_app(args.upstream), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
