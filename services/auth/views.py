"""Rows to the API's bodies (shared/accounts_api.py)."""

from emotion_contract.accounts import ApiKeyCreated, ApiKeyInfo, Limits, User
from shared.db.account_models import ApiKey, UserAccount

from .api_keys import MintedKey
from .settings import Settings


def limits_of(user: UserAccount, settings: Settings) -> Limits:
    """The user's own limits where set, the deployment's defaults elsewhere."""
    return Limits(
        monthly_analyses=(
            user.monthly_analyses if user.monthly_analyses is not None else settings.default_monthly_analyses
        ),
        monthly_video_seconds=(
            user.monthly_video_seconds
            if user.monthly_video_seconds is not None
            else settings.default_monthly_video_seconds
        ),
        rate_limit_per_minute=(
            user.rate_limit_per_minute
            if user.rate_limit_per_minute is not None
            else settings.default_rate_limit_per_minute
        ),
    )


def user_view(user: UserAccount, settings: Settings) -> User:
    return User(id=user.id, email=user.email, created_at=user.created_at, limits=limits_of(user, settings))


def key_info(key: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo.model_validate(key, from_attributes=True)


def key_created(key: ApiKey, minted: MintedKey) -> ApiKeyCreated:
    return ApiKeyCreated(**key_info(key).model_dump(), key=minted.key)
