"""The local stack's check of S3 POST uploads, against policies signed by the minio client (what the gateway
uses): a valid form passes; every way of stepping outside the policy is refused with S3's code."""

from datetime import UTC, datetime, timedelta

import pytest
from minio import Minio
from minio.datatypes import PostPolicy

from devstack.post_policy import PolicyError, Verified, check_size, verify

ACCESS, SECRET, BUCKET, KEY = "local-access", "local-secret-key", "uploads", "uploads/owner/0123/talk.mp4"


def signed_form(expires_in: timedelta = timedelta(minutes=5), max_bytes: int = 100) -> dict[str, str]:
    client = Minio("127.0.0.1:19000", access_key=ACCESS, secret_key=SECRET, secure=False, region="us-east-1")
    policy = PostPolicy(BUCKET, datetime.now(UTC) + expires_in)
    policy.add_equals_condition("key", KEY)
    policy.add_content_length_range_condition(1, max_bytes)
    return {"key": KEY, **client.presigned_post_policy(policy)}


def check(
    form: dict[str, str], *, bucket: str = BUCKET, access_key: str = ACCESS, secret_key: str = SECRET
) -> Verified:
    return verify(form, bucket=bucket, access_key=access_key, secret_key=secret_key)


def refused(
    form: dict[str, str], *, bucket: str = BUCKET, access_key: str = ACCESS, secret_key: str = SECRET
) -> str:
    with pytest.raises(PolicyError) as error:
        check(form, bucket=bucket, access_key=access_key, secret_key=secret_key)
    return error.value.code


def test_a_form_as_signed_passes_and_bounds_the_size() -> None:
    verified = check(signed_form())
    assert verified == Verified(key=KEY, min_bytes=1, max_bytes=100)
    check_size(verified, 1)
    check_size(verified, 100)
    with pytest.raises(PolicyError, match="over the maximum"):
        check_size(verified, 101)
    with pytest.raises(PolicyError, match="under the minimum"):
        check_size(verified, 0)


def test_every_way_out_of_the_policy_is_refused() -> None:
    form = signed_form()
    assert refused({**form, "key": "media/owner/0123/talk.mp4"}) == "AccessDenied"
    assert refused(form, bucket="models") == "AccessDenied"
    assert refused({**form, "x-amz-signature": "0" * 64}) == "SignatureDoesNotMatch"
    assert refused(form, secret_key="another-secret") == "SignatureDoesNotMatch"
    assert refused(form, access_key="someone-else") == "InvalidAccessKeyId"
    assert refused({**form, "acl": "public-read"}) == "AccessDenied"  # a field the policy does not name
    assert refused({**form, "x-amz-algorithm": "AWS4-HMAC-SHA1"}) == "InvalidRequest"
    assert refused(signed_form(expires_in=timedelta(seconds=-1))) == "AccessDenied"
    # A policy widened by the client no longer matches its signature.
    wider = signed_form(max_bytes=10**12)
    assert refused({**form, "policy": wider["policy"]}) == "SignatureDoesNotMatch"
