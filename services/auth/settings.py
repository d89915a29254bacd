"""The auth service's settings: the shared ones plus accounts, sessions and keys (`EA_*` variables)."""

from typing import Final, Self

from pydantic import Field, SecretStr, model_validator

from shared.settings import DatabaseSettings, Environment

DEV_JWT_SECRET: Final = "dev-jwt-secret-change-me-0123456789abcdef"
DEV_KEY_PEPPER: Final = "dev-key-pepper-change-me-0123456789abcdef"
# HS256 with a key shorter than its 256-bit output is weaker than the algorithm (RFC 7518, section 3.2).
MIN_SECRET_LENGTH: Final = 32


class Settings(DatabaseSettings):
    service_name: str = "auth"
    database_pool_size: int = Field(
        default=20, ge=1, description="Pooled PostgreSQL connections: about the requests served at once"
    )
    http_port: int = Field(default=8001, ge=0, le=65535)

    jwt_secret: SecretStr = Field(
        default=SecretStr(DEV_JWT_SECRET),
        min_length=MIN_SECRET_LENGTH,
        description="HS256 key of session JWTs",
    )
    jwt_issuer: str = Field(default="emotion-analyzer-auth", min_length=1, description="The JWTs' `iss`")
    session_ttl_s: int = Field(default=12 * 3600, ge=1, description="Lifetime of a login session")
    key_pepper: SecretStr = Field(
        default=SecretStr(DEV_KEY_PEPPER),
        min_length=MIN_SECRET_LENGTH,
        description="HMAC key under which API keys are stored; changing it invalidates every key",
    )
    internal_token: SecretStr | None = Field(
        default=None, description="When set, introspection requires it as the X-Internal-Token header"
    )

    # argon2id cost; the defaults are argon2-cffi's (RFC 9106's second recommendation, low memory).
    password_time_cost: int = Field(default=3, ge=1, description="argon2 iterations")
    password_memory_cost_kib: int = Field(default=64 * 1024, ge=8, description="argon2 memory, in KiB")
    password_parallelism: int = Field(default=4, ge=1, description="argon2 lanes")
    password_hash_concurrency: int = Field(
        default=2,
        ge=1,
        description="Password hashes computed at once; each holds password_memory_cost_kib while it runs",
    )
    password_hash_queue: int = Field(
        default=16, ge=0, description="Password checks that may wait for a turn; more are refused with 503"
    )

    max_api_keys_per_user: int = Field(
        default=20, ge=1, description="Unrevoked API keys one account may hold at once"
    )
    default_monthly_analyses: int = Field(default=100, ge=0, description="For users without their own")
    default_monthly_video_seconds: int = Field(
        default=36_000, ge=0, description="For users without their own"
    )
    default_rate_limit_per_minute: int = Field(default=120, ge=1, description="For users without their own")

    @model_validator(mode="after")
    def _no_auth_dev_secrets_outside_development(self) -> Self:
        if self.environment is not Environment.DEVELOPMENT:
            defaults = {"jwt_secret": DEV_JWT_SECRET, "key_pepper": DEV_KEY_PEPPER}
            for name, default in defaults.items():
                if self._secrets()[name] == default:
                    raise ValueError(f"{name} still has its development default; set EA_{name.upper()}")
        return self

    @model_validator(mode="after")
    def _internal_token_in_production(self) -> Self:
        # Without it, anything that reaches the auth service can introspect credentials.
        if self.environment is Environment.PRODUCTION and self.internal_token is None:
            raise ValueError("set EA_INTERNAL_TOKEN: production requires it between the gateway and auth")
        return self

    def _secrets(self) -> dict[str, str]:
        token = self.internal_token
        return {
            **super()._secrets(),
            "jwt_secret": self.jwt_secret.get_secret_value(),
            "key_pepper": self.key_pepper.get_secret_value(),
            **({"internal_token": token.get_secret_value()} if token else {}),
        }
