"""What a local stack is made of: ports, credentials, where its files go and which services it runs."""

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final

from pydantic import BaseModel, Field

from devstack import prometheus
from shared.settings import DatabaseSettings, ModelSettings, PipelineSettings
from shared.transcription import threads_beside

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
DEFAULT_ROOT: Final = REPO_ROOT / "var" / "stack"

# `up` uses the ports the settings default to, so a service started by hand finds the stack too.
DEFAULT_KAFKA_PORT: Final = 19092
DEFAULT_S3_PORT: Final = 19000
DEFAULT_PRIVATE_POSTGRES_PORT: Final = 15432
DEFAULT_GATEWAY_PORT: Final = 8000
DEFAULT_AUTH_PORT: Final = 8001
DEFAULT_METRICS_PORT_BASE: Final = 9461

Port = Annotated[int, Field(ge=0, le=65535, description="0 picks a free port when the stack starts")]


class StackSettings(PipelineSettings, DatabaseSettings, ModelSettings):
    """Every concern's settings at once: what the stack's fixtures and scripts point clients with."""


def _settings_default(field: str) -> str:
    return str(StackSettings.model_fields[field].default)


class ServiceName(StrEnum):
    GATEWAY = "gateway"
    AUTH = "auth"
    TRANSCRIBER = "transcriber"
    VIDEO_ENCODER = "video_encoder"
    AUDIO_ENCODER = "audio_encoder"
    FUSION = "fusion"


# The services that answer HTTP requests on EA_HTTP_PORT; the others only consume events and serve
# /healthz and /metrics on EA_METRICS_PORT.
HTTP_SERVICES: Final = frozenset({ServiceName.GATEWAY, ServiceName.AUTH})
# Encoders load model weights before they report healthy.
MODEL_SERVICES: Final = frozenset(
    {ServiceName.TRANSCRIBER, ServiceName.VIDEO_ENCODER, ServiceName.AUDIO_ENCODER}
)


# On one machine the encoders work beside the transcriber (from the same analysis.requested): they get one
# thread each and a lower priority, the transcriber the other cores, so the transcription, which is the
# job's critical path, is not slowed by threads waiting on each other (shared.transcription.threads_beside).
ONE_MACHINE_THREADS: Final[dict[ServiceName, dict[str, str]]] = {
    ServiceName.TRANSCRIBER: {"EA_WHISPER_THREADS": str(threads_beside())},
    ServiceName.VIDEO_ENCODER: {"EA_TORCH_THREADS": "1"},
    ServiceName.AUDIO_ENCODER: {"EA_WHISPER_THREADS": "1"},
}
BESIDE_THE_TRANSCRIBER: Final = frozenset({ServiceName.VIDEO_ENCODER, ServiceName.AUDIO_ENCODER})
BESIDE_THE_TRANSCRIBER_NICE: Final = 10


class ServiceSpec(BaseModel):
    name: ServiceName
    http_port: Port | None = Field(default=None, description="EA_HTTP_PORT, for services with a REST API")
    metrics_port: Port = 0
    ready_timeout_s: float = Field(default=30.0, gt=0, description="How long /healthz may take to answer 200")
    extra_env: dict[str, str] = Field(default_factory=dict, description="Variables for this service only")
    command: list[str] | None = Field(
        default=None, description="Program to run instead of `python -m services.<name>`, e.g. a uvicorn line"
    )
    nice: int = Field(
        default=0, ge=0, le=19, description="Scheduling niceness: higher yields the CPU to others"
    )

    @property
    def module(self) -> str:
        return f"services.{self.name.value}"

    @classmethod
    def default(cls, name: ServiceName, *, fixed_ports: bool) -> "ServiceSpec":
        """A service with the `up` command's fixed ports, or with ports picked at start."""
        http_port: int | None = None
        if name in HTTP_SERVICES:
            fixed = DEFAULT_GATEWAY_PORT if name is ServiceName.GATEWAY else DEFAULT_AUTH_PORT
            http_port = fixed if fixed_ports else 0
        index = list(ServiceName).index(name)
        return cls(
            name=name,
            http_port=http_port,
            metrics_port=DEFAULT_METRICS_PORT_BASE + index if fixed_ports else 0,
            ready_timeout_s=120.0 if name in MODEL_SERVICES else 30.0,
            extra_env=dict(ONE_MACHINE_THREADS.get(name, {})),
            nice=BESIDE_THE_TRANSCRIBER_NICE if name in BESIDE_THE_TRANSCRIBER else 0,
        )


class PostgresMode(StrEnum):
    AUTO = "auto"  # the server on system_postgres_port when it answers, else a private one
    SYSTEM = "system"
    PRIVATE = "private"


class StackConfig(BaseModel):
    root: Path = Field(default=DEFAULT_ROOT, description="State file, logs and data live here")
    host: str = "127.0.0.1"
    kafka_port: Port = 0
    kafka_partitions: int = Field(default=3, ge=1, description="Partitions of each pipeline topic")
    s3_port: Port = 0
    # rclone refuses access keys shorter than three characters.
    s3_access_key: str = Field(default=_settings_default("s3_access_key"), min_length=3)
    s3_secret_key: str = Field(default=StackSettings.model_fields["s3_secret_key"].default.get_secret_value())
    buckets: list[str] = Field(
        default_factory=lambda: [_settings_default("uploads_bucket"), _settings_default("models_bucket")]
    )
    durable_broker: bool = Field(
        default=True,
        description="Keep the broker's topics in the S3 server (broker_bucket), so that they outlive a "
        "restart of the broker; else in its memory",
    )
    broker_bucket: str = "broker"
    postgres: PostgresMode = PostgresMode.AUTO
    system_postgres_port: Port = 5432
    postgres_user: str = "postgres"
    private_postgres_port: Port = 0
    postgres_data_dir: Path | None = Field(default=None, description="Private server's data; root/postgres")
    database_name: str = Field(default="emotion_analyzer", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    services: list[ServiceSpec] = Field(default_factory=list)
    bundle_dir: Path | None = Field(
        default=None, description="A local model bundle to publish to the models bucket for the services"
    )
    attached: bool = Field(default=True, description="Children die when the starting process dies")
    monitoring: bool = Field(
        default=False,
        description="Also start a Prometheus that scrapes every service (`make up MONITORING=1`)",
    )
    prometheus_port: Port = 0
    scrape_interval_s: float = Field(default=5.0, gt=0)
    infra_ready_timeout_s: float = Field(default=20.0, gt=0)
    stop_grace_s: float = Field(default=10.0, ge=0)

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def s3_data_dir(self) -> Path:
        return self.root / "s3"

    @property
    def prometheus_dir(self) -> Path:
        return self.root / "prometheus"

    @property
    def private_postgres_dir(self) -> Path:
        return self.postgres_data_dir or self.root / "postgres"

    @classmethod
    def for_up(cls, **overrides: object) -> "StackConfig":
        """The `up` command's stack: fixed well-known ports and every service, detached."""
        values: dict[str, object] = {
            "kafka_port": DEFAULT_KAFKA_PORT,
            "s3_port": DEFAULT_S3_PORT,
            "private_postgres_port": DEFAULT_PRIVATE_POSTGRES_PORT,
            "prometheus_port": prometheus.DEFAULT_PORT,
            "services": [ServiceSpec.default(name, fixed_ports=True) for name in ServiceName],
            "attached": False,
        }
        values.update(overrides)
        return cls.model_validate(values)
