"""Settings by concern; each service's `settings.py` combines the concerns it has and adds its own.

A service is handed only what it uses: auth gets no Kafka, S3 or model fields, the encoders no database.
Environment variables carry the field names upper-cased with the `EA_` prefix
(`EA_KAFKA_BOOTSTRAP_SERVERS`, `EA_DATABASE_URL`, ...), the same names the Kubernetes ConfigMaps use.
"""

from enum import StrEnum
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_S3_SECRET = "dev-secret-key-change-me"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class BaseServiceSettings(BaseSettings):
    """What every service has: its name and environment, logging, and where its HTTP endpoints bind."""

    model_config = SettingsConfigDict(env_prefix="EA_", env_file=".env", extra="ignore")

    environment: Environment = Environment.DEVELOPMENT
    service_name: str = "emotion-analyzer"
    log_level: str = "INFO"
    http_host: str = Field(
        default="127.0.0.1", description="Address the HTTP endpoints bind; 0.0.0.0 in a container"
    )
    metrics_port: int | None = Field(
        default=None,
        description="Port of /metrics (and /healthz, for the consumer services); the gateway and auth serve "
        "/metrics only there, apart from their API",
    )

    @model_validator(mode="after")
    def _no_default_secrets_outside_development(self) -> Self:
        if self.environment is not Environment.DEVELOPMENT:
            for name, value in self._secrets().items():
                if value == DEV_S3_SECRET:
                    raise ValueError(f"{name} still has its development default; set EA_{name.upper()}")
        return self

    def _secrets(self) -> dict[str, str]:
        """The secret fields' values, each concern adding its own (`super()._secrets()`)."""
        return {}

    def require_declared_environment(self) -> None:
        """Called as a service starts: EA_ENVIRONMENT must be said, not defaulted, so that a production
        deployment that forgot it does not run with development's allowances."""
        if "environment" not in self.model_fields_set:
            raise SystemExit(
                f"{self.service_name}: set EA_ENVIRONMENT (production or development) before starting"
            )


class KafkaSettings(BaseServiceSettings):
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1_000)
    kafka_fetch_max_wait_ms: int = Field(
        default=50,
        ge=0,
        description="Longest a fetch waits for data; bounds each hop's latency on brokers that "
        "do not answer a waiting fetch as soon as data arrives (Tansu)",
    )
    kafka_max_request_size: int = Field(default=4 * 1024 * 1024, ge=1024)
    kafka_max_poll_interval_s: float = Field(
        default=900.0,
        ge=10,
        description="How long one event's handler may run before the broker takes the consumer's "
        "partitions away and redelivers the event (services that take files add time per second of "
        "the longest one: stage_seconds_per_media_second)",
    )
    consumer_lag_interval_s: float = Field(
        default=10.0, gt=0, description="How often the service's consumer group lag is measured"
    )

    def max_poll_interval_s(self) -> float:
        """How long a handler may run on one event before the broker hands its partition to another
        consumer (and so redelivers the event)."""
        return self.kafka_max_poll_interval_s


class DatabaseSettings(BaseServiceSettings):
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/emotion_analyzer"
    database_pool_size: int = Field(
        default=5, ge=1, description="Pooled PostgreSQL connections per process (HTTP services: 20)"
    )


class StorageSettings(BaseServiceSettings):
    """The object store: uploads (and the events' claim-check bodies) and model bundles."""

    s3_endpoint: str = "127.0.0.1:19000"
    s3_access_key: str = "emotion-analyzer"
    s3_secret_key: SecretStr = SecretStr(DEV_S3_SECRET)
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    uploads_bucket: str = "uploads"
    max_upload_bytes: int = Field(
        default=512 * 1024 * 1024,
        ge=1,
        description="Largest file accepted for analysis; the workers check it again before downloading",
    )
    models_bucket: str = "models"
    claim_check_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="Events larger than this travel as a ticket to their body in the object store",
    )

    def _secrets(self) -> dict[str, str]:
        return {**super()._secrets(), "s3_secret_key": self.s3_secret_key.get_secret_value()}


class ModelSettings(BaseServiceSettings):
    """Where the model bundle comes from and what runs it."""

    bundle_uri: str = Field(
        default="var/bundles/default",
        description="A local bundle directory, or s3://BUCKET/PREFIX of a bundle in the object store",
    )
    bundle_cache_dir: str = "var/cache/bundles"
    device: str = Field(default="cpu", description="torch device for the encoders: cpu, cuda, cuda:1")
    torch_threads: int | None = Field(
        default=None, ge=1, description="torch intra-op threads (default: torch's)"
    )


class PipelineSettings(KafkaSettings, StorageSettings):
    """A service in the event pipeline: large events travel by claim check, failing ones are dead-lettered."""

    max_deliveries: int = Field(
        default=5,
        ge=1,
        description="Deliveries of one event a worker tries before it dead-letters it and fails its job",
    )


class EncoderSettings(PipelineSettings, ModelSettings):
    """Settings of the services that download the uploaded file and run a model on it."""

    def max_poll_interval_s(self) -> float:
        return self.kafka_max_poll_interval_s + self.stage_seconds_per_media_second * self.max_duration_s

    work_dir: str = Field(default="var/work", description="Scratch space for downloaded files")
    max_duration_s: float = Field(default=3 * 3600.0, gt=0, description="Longest file accepted, in seconds")
    stage_seconds_per_media_second: float = Field(
        default=0.5,
        ge=0,
        description="How long this service's stage may take per second of its file on this hardware; "
        "keep it at or above the gateway's EA_STUCK_JOB_SECONDS_PER_MEDIA_SECOND, so that a slow stage is "
        "the sweeper's to re-drive, not the broker's to redeliver in a loop",
    )
    run_untrained: bool = Field(default=False, description="Run encoder branches whose weights are untrained")
    whisper_threads: int = Field(
        default=0,
        ge=0,
        description="CTranslate2 threads of a Whisper model on a CPU (transcriber, audio encoder); "
        "0: its default",
    )
