"""A browser can upload straight to the local object store by a presigned URL, as it can to MinIO:
the CORS front answers the preflight and passes the signed request through to rclone unchanged."""

import uuid
from datetime import timedelta

import httpx
import pytest
from minio import Minio

from devstack import LocalStack
from shared.storage import ObjectStore

pytestmark = pytest.mark.integration

ORIGIN = "http://127.0.0.1:8000"


def public_store(stack: LocalStack) -> ObjectStore:
    """Signs for the front's address, as the gateway does with EA_PUBLIC_S3_ENDPOINT."""
    settings = stack.settings()
    return ObjectStore(
        Minio(
            stack.public_s3_url.removeprefix("http://"),
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=False,
            region=settings.s3_region,
        )
    )


def test_the_stack_points_clients_at_the_front(stack: LocalStack) -> None:
    assert stack.env()["EA_PUBLIC_S3_ENDPOINT"] == stack.public_s3_url
    assert stack.public_s3_url != f"http://{stack.s3_endpoint}"


def test_a_browser_style_presigned_upload_and_download_pass_the_front(
    stack: LocalStack, object_store: ObjectStore
) -> None:
    key = f"uploads/cors/{uuid.uuid4().hex}/clip.mp4"
    store = public_store(stack)
    put_url = str(store.client.presigned_put_object("uploads", key, expires=timedelta(minutes=5)))
    body = b"\x00\x00\x00\x18ftypmp42" + bytes(4096)

    preflight = httpx.options(
        put_url,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "PUT" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == "content-type"

    put = httpx.put(put_url, content=body, headers={"Origin": ORIGIN})
    assert put.status_code == 200, put.text
    assert put.headers["access-control-allow-origin"] == ORIGIN and put.headers["etag"]
    assert object_store.read_head("uploads", key, len(body) + 1) == body

    get_url = store.presigned_get_url("uploads", key, timedelta(minutes=5))
    get = httpx.get(get_url, headers={"Origin": ORIGIN})
    assert get.status_code == 200 and get.content == body
    # A media player reads by ranges and waits for 206 before it trusts one.
    ranged = httpx.get(get_url, headers={"Origin": ORIGIN, "Range": "bytes=4-11"})
    assert ranged.status_code == 206 and ranged.content == body[4:12]
    assert ranged.headers["content-range"] == f"bytes 4-11/{len(body)}"


def test_the_front_keeps_signatures_checked(stack: LocalStack) -> None:
    key = f"uploads/cors/{uuid.uuid4().hex}/clip.mp4"
    put_url = str(
        public_store(stack).client.presigned_put_object("uploads", key, expires=timedelta(minutes=5))
    )
    forged = put_url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert httpx.put(forged, content=b"x").status_code == 403
    unsigned = httpx.put(f"{stack.public_s3_url}/uploads/{key}", content=b"x")
    assert unsigned.status_code in (400, 403)  # rclone refuses a request with no signature as malformed
