"""The gateway's settings refuse development secrets in production."""

from datetime import timedelta

import pytest
from pydantic import ValidationError

from services.gateway.main import public_store
from services.gateway.settings import Settings
from shared.settings import DEV_API_KEY, Environment


def test_development_runs_with_the_default_api_key() -> None:
    settings = Settings.model_validate({})
    assert settings.api_key.get_secret_value() == DEV_API_KEY
    assert settings.service_name == "gateway" and settings.http_port == 8000


def test_production_refuses_the_default_api_key() -> None:
    with pytest.raises(ValidationError, match="api_key still has its development default"):
        Settings.model_validate({"environment": Environment.PRODUCTION, "s3_secret_key": "a-real-secret"})


def test_production_accepts_real_secrets() -> None:
    settings = Settings.model_validate(
        {"environment": Environment.PRODUCTION, "s3_secret_key": "a-real-secret", "api_key": "a-real-key"}
    )
    assert settings.api_key.get_secret_value() == "a-real-key"


def test_public_endpoint_must_be_a_url() -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate({"public_s3_endpoint": "not a url"})
    settings = Settings.model_validate({"public_s3_endpoint": "https://s3.example.com"})
    assert settings.public_s3_endpoint is not None and settings.public_s3_endpoint.host == "s3.example.com"


def test_upload_urls_are_signed_for_the_public_endpoint() -> None:
    settings = Settings.model_validate({"public_s3_endpoint": "https://s3.example.com:8443"})
    url = public_store(settings).presigned_put_url(
        "uploads", "uploads/static/abc/clip.mp4", timedelta(minutes=5)
    )
    assert url.startswith("https://s3.example.com:8443/uploads/uploads/static/abc/clip.mp4?")
    assert "X-Amz-Signature=" in url
