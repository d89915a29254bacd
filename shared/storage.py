"""The object store (MinIO/S3 API through the `minio` client): uploaded files and model bundles.

The client is synchronous; async callers run these methods in a thread (`asyncio.to_thread`).
"""

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from minio import Minio
from minio.commonconfig import CopySource
from minio.datatypes import PostPolicy
from minio.error import InvalidResponseError, S3Error
from pydantic import BaseModel

from shared.settings import StorageSettings


class ObjectInfo(BaseModel):
    bucket: str
    key: str
    size: int
    content_type: str | None = None


class ObjectNotFoundError(LookupError):
    def __init__(self, bucket: str, key: str) -> None:
        super().__init__(f"s3://{bucket}/{key} does not exist")
        self.bucket = bucket
        self.key = key


_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"})


class ObjectStore:
    def __init__(self, client: Minio) -> None:
        self.client = client

    @classmethod
    def from_settings(cls, settings: StorageSettings) -> "ObjectStore":
        return cls(
            Minio(
                settings.s3_endpoint,
                access_key=settings.s3_access_key,
                secret_key=settings.s3_secret_key.get_secret_value(),
                secure=settings.s3_secure,
                region=settings.s3_region,
            )
        )

    def ensure_bucket(self, bucket: str) -> None:
        if not self.client.bucket_exists(bucket):
            try:
                self.client.make_bucket(bucket)
            except S3Error as exc:  # another process made it in between
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def presigned_post(
        self, bucket: str, key: str, expires: timedelta, *, max_bytes: int
    ) -> tuple[str, dict[str, str]]:
        """Where to POST a browser-style upload of exactly `key`, 1 to `max_bytes` long, and the signed
        form fields to send before the file (S3's POST Object with a policy)."""
        policy = PostPolicy(bucket, datetime.now(UTC) + expires)
        policy.add_equals_condition("key", key)
        policy.add_content_length_range_condition(1, max_bytes)
        fields = {"key": key, **self.client.presigned_post_policy(policy)}
        # The bucket's URL as this client addresses it (path or virtual-host style, AWS or not).
        region = self.client._get_region(bucket)
        url = self.client._base_url.build(method="POST", region=region, bucket_name=bucket)
        return url.geturl(), fields

    def presigned_get_url(
        self, bucket: str, key: str, expires: timedelta, response_headers: dict[str, str] | None = None
    ) -> str:
        """A GET URL; `response_headers` (S3's response-content-type and the like) are signed into it."""
        return str(
            self.client.presigned_get_object(
                bucket, key, expires=expires, response_headers=cast(Any, response_headers)
            )
        )

    def stat(self, bucket: str, key: str) -> ObjectInfo:
        try:
            stat = self.client.stat_object(bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING_CODES:
                raise ObjectNotFoundError(bucket, key) from exc
            raise
        return ObjectInfo(bucket=bucket, key=key, size=stat.size or 0, content_type=stat.content_type)

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.stat(bucket, key)
        except ObjectNotFoundError:
            return False
        return True

    def read_head(self, bucket: str, key: str, n: int) -> bytes:
        """The first `n` bytes of the object (all of it when shorter), by a ranged GET."""
        try:
            response = self.client.get_object(bucket, key, offset=0, length=n)
        except S3Error as exc:
            if exc.code in _MISSING_CODES:
                raise ObjectNotFoundError(bucket, key) from exc
            raise
        except InvalidResponseError as exc:
            # rclone's 404 for a ranged GET has an XML body minio-py does not parse as S3's.
            if exc._code == 404:  # the status is kept only there
                raise ObjectNotFoundError(bucket, key) from exc
            raise
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        self.client.put_object(bucket, key, io.BytesIO(data), len(data), content_type=content_type)

    def upload_file(self, bucket: str, key: str, path: Path, content_type: str | None = None) -> None:
        self.client.fput_object(
            bucket, key, str(path), content_type=content_type or "application/octet-stream"
        )

    def download_file(self, bucket: str, key: str, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.fget_object(bucket, key, str(path))
        except S3Error as exc:
            if exc.code in _MISSING_CODES:
                raise ObjectNotFoundError(bucket, key) from exc
            raise
        return path

    def copy(self, bucket: str, source_key: str, target_key: str) -> None:
        """A server-side copy within the bucket; ObjectNotFoundError when the source is missing."""
        try:
            self.client.copy_object(bucket, target_key, CopySource(bucket, source_key))
        except S3Error as exc:
            if exc.code in _MISSING_CODES:
                raise ObjectNotFoundError(bucket, source_key) from exc
            raise

    def remove_older_than(self, bucket: str, prefix: str, older_than: timedelta) -> list[str]:
        """Remove every object under `prefix` last written more than `older_than` ago; their keys."""
        cutoff = datetime.now(UTC) - older_than
        expired = [
            str(o.object_name)
            for o in self.client.list_objects(bucket, prefix=prefix, recursive=True)
            if (o.last_modified or datetime.now(UTC)) < cutoff
        ]
        for key in expired:
            self.remove(bucket, key)
        return expired

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        return [str(o.object_name) for o in self.client.list_objects(bucket, prefix=prefix, recursive=True)]

    def remove(self, bucket: str, key: str) -> None:
        self.client.remove_object(bucket, key)
