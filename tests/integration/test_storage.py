"""The object store against the stack's real S3 server (rclone, with SigV4 checks)."""

import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from minio.error import InvalidResponseError

from devstack import LocalStack
from shared.downloads import StoredFileError, downloaded
from shared.stage_errors import classify
from shared.storage import ObjectNotFoundError, ObjectStore

pytestmark = pytest.mark.integration


def _key(name: str) -> str:
    return f"tests/{uuid.uuid4().hex}/{name}"


def test_stack_creates_the_buckets_services_use(object_store: ObjectStore, stack: LocalStack) -> None:
    names = {bucket.name for bucket in object_store.client.list_buckets()}
    settings = stack.settings()
    assert {settings.uploads_bucket, settings.models_bucket} <= names


def test_presigned_put_then_stat_and_get(object_store: ObjectStore) -> None:
    key = _key("clip.mp4")
    body = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40
    put_url = str(object_store.client.presigned_put_object("uploads", key, expires=timedelta(minutes=5)))

    response = httpx.put(put_url, content=body, headers={"Content-Type": "video/mp4"})

    assert response.status_code == 200, response.text
    info = object_store.stat("uploads", key)
    assert info.size == len(body)
    assert info.content_type == "video/mp4"
    get_url = object_store.presigned_get_url("uploads", key, timedelta(minutes=5))
    assert httpx.get(get_url).content == body


def test_tampered_presigned_url_is_refused(object_store: ObjectStore) -> None:
    key = _key("clip.mp4")
    put_url = str(object_store.client.presigned_put_object("uploads", key, expires=timedelta(minutes=5)))
    # Same signature, other object: the server must recompute and reject it.
    tampered = put_url.replace(key, _key("other.mp4"))

    response = httpx.put(tampered, content=b"payload")

    assert response.status_code == 403
    assert not object_store.exists("uploads", key)


@pytest.mark.parametrize(
    ("override", "error_code"),
    [
        ({"s3_secret_key": "not-the-secret"}, "SignatureDoesNotMatch"),
        ({"s3_access_key": "someone-else"}, "InvalidAccessKeyId"),
    ],
)
def test_wrong_credentials_are_refused(stack: LocalStack, override: dict[str, str], error_code: str) -> None:
    intruder = ObjectStore.from_settings(stack.settings(**override))

    # rclone answers 403 with an XML body that minio-py does not take for S3 XML.
    with pytest.raises(InvalidResponseError) as refused:
        intruder.client.list_buckets()

    assert "Response code: 403" in str(refused.value)
    assert f"<Code>{error_code}</Code>" in str(refused.value)


def test_upload_download_round_trip(object_store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(uuid.uuid4().bytes * 1000)
    key = _key("weights.bin")

    object_store.upload_file("models", key, source)
    copy = object_store.download_file("models", key, tmp_path / "copy" / "weights.bin")

    assert copy.read_bytes() == source.read_bytes()
    assert key in object_store.list_keys("models", key.rsplit("/", 1)[0])
    object_store.remove("models", key)
    assert not object_store.exists("models", key)


def test_missing_object_raises_not_found(object_store: ObjectStore, tmp_path: Path) -> None:
    key = _key("absent.bin")
    with pytest.raises(ObjectNotFoundError):
        object_store.stat("uploads", key)
    with pytest.raises(ObjectNotFoundError):
        object_store.download_file("uploads", key, tmp_path / "absent.bin")


async def test_a_worker_checks_the_stored_size_before_downloading(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    key = _key("clip.wav")
    source = tmp_path / "clip.wav"
    source.write_bytes(b"x" * 100)
    object_store.upload_file("uploads", key, source)
    work = str(tmp_path / "work")

    async with downloaded(object_store, "uploads", key, work, max_bytes=100, expected_bytes=100) as path:
        assert path.read_bytes() == b"x" * 100
    for max_bytes, expected, code in [(99, None, "file_too_large"), (1000, 64, "upload_changed")]:
        with pytest.raises(StoredFileError) as refused:
            async with downloaded(
                object_store, "uploads", key, work, max_bytes=max_bytes, expected_bytes=expected
            ):
                pytest.fail("nothing may be downloaded")
        failure = classify(refused.value)
        assert failure is not None and failure.code == code
    assert list((tmp_path / "work").iterdir()) == []
