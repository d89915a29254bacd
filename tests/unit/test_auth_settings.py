"""The auth service's settings refuse development secrets outside development, and short ones anywhere."""

import pytest
from pydantic import ValidationError

from services.auth.settings import DEV_JWT_SECRET, DEV_KEY_PEPPER, Settings

STRONG = {
    "internal_token": "a-production-internal-token",
    "s3_secret_key": "a-production-s3-secret",
    "jwt_secret": "a-production-jwt-secret-0123456789abcdef",
    "key_pepper": "a-production-key-pepper-0123456789abcdef",
}


def test_production_accepts_secrets_of_its_own() -> None:
    settings = Settings.model_validate({"environment": "production", **STRONG})
    assert settings.jwt_secret.get_secret_value() == STRONG["jwt_secret"]


@pytest.mark.parametrize(
    ("name", "default"), [("jwt_secret", DEV_JWT_SECRET), ("key_pepper", DEV_KEY_PEPPER)]
)
def test_production_refuses_a_development_default(name: str, default: str) -> None:
    with pytest.raises(ValidationError, match=f"{name} still has its development default"):
        Settings.model_validate({"environment": "production", **STRONG, name: default})
    assert Settings.model_validate({**STRONG, name: default}).environment == "development"


@pytest.mark.parametrize("name", ["jwt_secret", "key_pepper"])
def test_short_secrets_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings.model_validate({name: "x" * 31})


def test_production_refuses_to_run_without_an_internal_token() -> None:
    without = {name: value for name, value in STRONG.items() if name != "internal_token"}
    with pytest.raises(ValidationError, match="EA_INTERNAL_TOKEN"):
        Settings.model_validate({"environment": "production", **without})
    assert Settings.model_validate(without).internal_token is None  # development may leave it open


def test_a_service_will_not_start_without_a_declared_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EA_ENVIRONMENT", raising=False)
    with pytest.raises(SystemExit, match="set EA_ENVIRONMENT"):
        Settings(_env_file=None).require_declared_environment()
    monkeypatch.setenv("EA_ENVIRONMENT", "development")
    Settings(_env_file=None).require_declared_environment()
