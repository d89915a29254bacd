"""The auth service's settings refuse development secrets outside development, and short ones anywhere."""

import pytest
from pydantic import ValidationError

from services.auth.settings import DEV_JWT_SECRET, DEV_KEY_PEPPER, Settings

STRONG = {
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
