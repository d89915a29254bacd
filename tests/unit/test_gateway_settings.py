"""The gateway's settings refuse development secrets in production."""

from datetime import timedelta

import pytest
from pydantic import ValidationError

from services.gateway.main import public_store
from services.gateway.settings import Settings
from shared.settings import Environment


def test_development_runs_with_defaults() -> None:
    settings = Settings.model_validate({})
    assert settings.service_name == "gateway" and settings.http_port == 8000
    assert str(settings.auth_url) == "http://127.0.0.1:8001/"


def test_production_refuses_the_default_storage_secret_and_a_missing_internal_token() -> None:
    with pytest.raises(ValidationError, match="s3_secret_key still has its development default"):
        Settings.model_validate({"environment": Environment.PRODUCTION, "internal_token": "a-real-token"})
    with pytest.raises(ValidationError, match="EA_INTERNAL_TOKEN"):
        Settings.model_validate({"environment": Environment.PRODUCTION, "s3_secret_key": "a-real-secret"})
    settings = Settings.model_validate(
        {
            "environment": Environment.PRODUCTION,
            "s3_secret_key": "a-real-secret",
            "internal_token": "a-real-token",
        }
    )
    assert settings.s3_secret_key.get_secret_value() == "a-real-secret"


def test_a_credential_is_never_trusted_for_more_than_five_seconds() -> None:
    # The promise that a revoked key stops working within 5 s rests on this bound.
    with pytest.raises(ValidationError):
        Settings.model_validate({"auth_cache_ttl_s": 5.1})
    with pytest.raises(ValidationError):
        Settings.model_validate({"auth_negative_cache_ttl_s": 6})


def test_public_endpoint_must_be_a_url() -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate({"public_s3_endpoint": "not a url"})
    settings = Settings.model_validate({"public_s3_endpoint": "https://s3.example.com"})
    assert settings.public_s3_endpoint is not None and settings.public_s3_endpoint.host == "s3.example.com"


def test_upload_urls_are_signed_for_the_public_endpoint() -> None:
    settings = Settings.model_validate({"public_s3_endpoint": "https://s3.example.com:8443"})
    url, fields = public_store(settings).presigned_post(
        "uploads", "uploads/static/abc/clip.mp4", timedelta(minutes=5), max_bytes=1024
    )
    assert url.startswith("https://s3.example.com:8443/uploads")
    assert fields["key"] == "uploads/static/abc/clip.mp4" and fields["x-amz-signature"]


def test_a_webhook_lease_must_outlast_a_send() -> None:
    with pytest.raises(ValidationError, match="webhook_lease_s must be longer"):
        Settings.model_validate({"webhook_timeout_s": 90})
