"""A CORS front for the local S3 server, so a browser can upload to it as it can to MinIO.

`rclone serve s3` checks a SigV4 signature on every request, the browser's OPTIONS preflight included,
which no presigned URL covers, so browsers cannot upload to it directly. This front answers preflights
itself and passes every other request through unchanged, Host header included, so the signature rclone
checks is the one the gateway made for this address (it also says 206 for the ranges rclone answers with
200). rclone has no POST Object (browser uploads under a signed policy), which is how the gateway hands out
uploads: the front verifies such a POST as S3 does (devstack.post_policy) and writes the file to
rclone itself, with the credentials in EA_S3_ACCESS_KEY and EA_S3_SECRET_KEY. Local stack only: MinIO and
S3 do all this themselves.

    python -m devstack.s3_cors --host 127.0.0.1 --port 19001 --upstream http://127.0.0.1:19000
"""

import argparse
import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Final

import httpx
import uvicorn
from minio import Minio
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from devstack.post_policy import PolicyError, PostForm, Verified, check_size, verify
from shared.storage import ObjectStore


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    @classmethod
    def from_environment(cls) -> "Credentials | None":
        access, secret = os.environ.get("EA_S3_ACCESS_KEY"), os.environ.get("EA_S3_SECRET_KEY")
        if not access or not secret:
            return None
        return cls(access, secret, os.environ.get("EA_S3_REGION", "us-east-1"))

    def store(self, upstream: str) -> ObjectStore:
        url = httpx.URL(upstream)
        return ObjectStore(
            Minio(
                f"{url.host}:{url.port}",
                access_key=self.access_key,
                secret_key=self.secret_key,
                secure=url.scheme == "https",
                region=self.region,
            )
        )


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


def s3_error(status: int, code: str, message: str, origin: str | None) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml", headers=cors_headers(origin))


_POLICY_STATUS: Final = {
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "InvalidArgument": 400,
    "InvalidRequest": 400,
}


def create_app(upstream: str, credentials: Credentials | None = None) -> Starlette:
    client = httpx.AsyncClient(base_url=upstream, timeout=httpx.Timeout(60.0, read=None), trust_env=False)
    store = None if credentials is None else credentials.store(upstream)

    async def post_upload(request: Request, bucket: str) -> Response:
        """POST Object: the policy checked against the fields, the file checked against the policy."""
        origin = request.headers.get("origin")
        if store is None or credentials is None:
            return s3_error(501, "NotImplemented", "this front was started without credentials", origin)
        _, options = parse_options_header(request.headers.get("content-type", ""))
        boundary = options.get(b"boundary")
        if not boundary:
            return s3_error(400, "MalformedPOSTRequest", "expected multipart/form-data", origin)

        def check(fields: dict[str, str]) -> Verified:
            return verify(
                fields, bucket=bucket, access_key=credentials.access_key, secret_key=credentials.secret_key
            )

        form = PostForm(check=check)
        parser = form.parser(boundary)
        descriptor, name = tempfile.mkstemp(prefix="ea-post-")
        path = Path(name)
        try:
            with os.fdopen(descriptor, "wb") as sink:
                async for chunk in request.stream():
                    parser.write(chunk)
                    if form.pending:
                        data, form.pending = b"".join(form.pending), []
                        await asyncio.to_thread(sink.write, data)
                parser.finalize()
            if form.verified is None or not form.file_done:
                return s3_error(400, "MalformedPOSTRequest", "the form has no file", origin)
            check_size(form.verified, form.size)
            await asyncio.to_thread(
                store.upload_file, bucket, form.verified.key, path, form.fields.get("content-type")
            )
        except PolicyError as exc:
            return s3_error(_POLICY_STATUS.get(exc.code, 403), exc.code, str(exc), origin)
        except FormParserError as exc:
            return s3_error(400, "MalformedPOSTRequest", str(exc), origin)
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        return Response(status_code=204, headers=cors_headers(origin))

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
        bucket = request.url.path.strip("/")
        content_type = request.headers.get("content-type", "")
        if request.method == "POST" and "/" not in bucket and content_type.startswith("multipart/form-data"):
            return await post_upload(request, bucket)
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
    credentials = Credentials.from_environment()
    uvicorn.run(create_app(args.upstream, credentials), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
