"""The gateway's settings: the shared ones plus the REST API's, all read from `EA_*` variables."""

from typing import Final, Self

from pydantic import AnyHttpUrl, Field, IPvAnyNetwork, SecretStr, model_validator

from shared.settings import DatabaseSettings, Environment, PipelineSettings

MIB: Final = 1024 * 1024


class Settings(PipelineSettings, DatabaseSettings):
    service_name: str = "gateway"
    database_pool_size: int = Field(
        default=20, ge=1, description="Pooled PostgreSQL connections: about the requests served at once"
    )
    http_port: int = Field(default=8000, ge=0, le=65535, description="Port of the REST API")
    migrate_on_start: bool = Field(
        default=True,
        description="Apply the database migrations before serving (off where a Job with the owner's role "
        "migrates, and the gateway's own role may not change the schema)",
    )
    auth_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://127.0.0.1:8001"), description="Base URL of the auth service"
    )
    internal_token: SecretStr | None = Field(
        default=None, description="Sent as X-Internal-Token to the auth service's introspection"
    )
    auth_timeout_s: float = Field(default=5.0, gt=0, description="How long to wait for the auth service")
    auth_cache_ttl_s: float = Field(
        default=4.0,
        ge=0,
        le=5.0,
        description="How long a checked credential is trusted; bounds how late a revocation takes effect",
    )
    account_rate_limit_per_minute: int = Field(
        default=30, ge=1, description="Sign-ups and logins per minute from one client address"
    )
    account_email_rate_limit_per_minute: int = Field(
        default=10, ge=1, description="Sign-ups and logins per minute for one e-mail address, from anywhere"
    )
    max_watches_per_account: int = Field(
        default=20, ge=1, description="Event streams and long polls one account may hold open on a replica"
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Networks of the reverse proxies in front of the gateway, whose X-Forwarded-For is "
        "believed (e.g. the ingress pods' CIDR); empty: the connection's own address is the client's",
    )
    rejected_credentials_per_minute: int = Field(
        default=30,
        ge=1,
        description="Invalid API keys or session tokens one client address may send a minute; past it the "
        "address gets 429 for credentials this replica has not checked yet, without asking the auth service",
    )
    auth_negative_cache_ttl_s: float = Field(
        default=1.0, ge=0, le=5.0, description="How long a rejected credential stays rejected without asking"
    )

    media_probe_memory_mib: int = Field(
        default=384,
        ge=192,
        description="Address space of the child process that reads an upload's header (PyAV and FFmpeg "
        "take ~120 MiB); a file that needs more is refused as media_over_limits",
    )
    media_probe_timeout_s: float = Field(
        default=30.0, gt=0, description="Wall-clock time the header reader may take before it is killed"
    )
    media_probe_concurrency: int = Field(
        default=2,
        ge=1,
        description="Header readers running at once on a replica (each up to EA_MEDIA_PROBE_MEMORY_MIB of "
        "address space, 40-120 MB resident); more wait their turn",
    )
    scratch_bytes: int = Field(
        default=2 * 1024 * MIB,
        ge=1,
        description="Size of the scratch volume (/tmp) files sent in a request or fetched from a URL are "
        "written to before they are stored; each holds as much as it may grow to (a sent file its declared "
        "length, a fetched one EA_MAX_UPLOAD_BYTES) until it is stored, and what does not fit waits (503)",
    )
    scratch_bytes_per_account: int = Field(
        default=1024 * MIB,
        ge=1,
        description="The share of the scratch volume one account's files may hold at once (429 past it); at "
        "least EA_MAX_UPLOAD_BYTES",
    )
    upload_url_ttl_s: int = Field(default=900, ge=1, le=7 * 24 * 3600, description="Lifetime of upload URLs")
    unclaimed_upload_ttl_s: int = Field(
        default=6 * 3600,
        ge=1,
        description="An upload not analysed this long after it was written is removed (at least the URL's "
        "lifetime)",
    )
    max_upload_urls_per_account: int = Field(
        default=20,
        ge=1,
        description="Upload URLs an account may hold whose files were not analysed yet (each up to "
        "EA_MAX_UPLOAD_BYTES in the bucket until analysed or removed unclaimed); 429 past it",
    )
    upload_expiry_interval_s: float = Field(
        default=600.0, gt=0, description="How often unclaimed uploads are looked for"
    )
    public_s3_endpoint: AnyHttpUrl | None = Field(
        default=None,
        description="Base URL clients reach the object store at (presigned URLs), when not s3_endpoint",
    )
    publish_timeout_s: float = Field(
        default=10.0, gt=0, description="How long to wait for Kafka to take an event"
    )
    url_fetch_timeout_s: float = Field(
        default=300.0, gt=0, description="POST /v1/analyses {url}: the whole fetch, headers to last byte"
    )
    url_fetch_connect_timeout_s: float = Field(default=10.0, gt=0)
    url_fetch_allow_private_targets: bool = Field(
        default=False,
        description="Allow analysis URLs that resolve to private, loopback or link-local addresses",
    )
    kafka_outbox_relay: bool = Field(default=True, description="Run the Kafka outbox relay in this process")
    kafka_outbox_poll_interval_s: float = Field(
        default=2.0, gt=0, description="Check the Kafka outbox this often besides its NOTIFY wake-ups"
    )

    stuck_job_timeout_s: float = Field(
        default=600.0, gt=0, description="No progress for this long means stuck"
    )
    stuck_job_seconds_per_media_second: float = Field(
        default=0.5,
        ge=0,
        description="More time without progress a job is allowed per second of its file (stages report "
        "nothing until they end, and a long file's take longer)",
    )
    max_attempts: int = Field(default=2, ge=1, description="Attempts a stuck job gets before it fails")
    sweep_interval_s: float = Field(default=30.0, gt=0, description="How often the stuck-job sweeper runs")
    watch_fallback_s: float = Field(
        default=5.0, gt=0, description="Re-read a watched job this often even when no notification came"
    )

    webhook_dispatcher: bool = Field(default=True, description="Run the webhook dispatcher in this process")
    outbound_ports: list[int] = Field(
        default=[80, 443],
        description="The ports analysis URLs, callbacks and webhooks may connect to (a URL that names no "
        "port uses its scheme's); empty: any",
    )
    webhook_allow_private_targets: bool = Field(
        default=False,
        description="Allow webhook URLs that resolve to private, loopback or link-local addresses",
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="Time a receiver has to answer")
    webhook_max_attempts: int = Field(default=8, ge=1, description="Attempts before a delivery fails")
    webhook_backoff_base_s: float = Field(default=5.0, gt=0, description="Delay before the first retry")
    webhook_backoff_max_s: float = Field(default=3600.0, gt=0, description="Longest delay between retries")
    webhook_lease_s: float = Field(
        default=60.0, gt=0, description="A claimed delivery not finished in this time is sent again"
    )
    webhook_poll_interval_s: float = Field(
        default=1.0, gt=0, description="Check for due deliveries this often"
    )
    webhook_sends_per_owner: int = Field(
        default=2,
        ge=1,
        description="Deliveries of one owner being sent at once, by all dispatchers together: a tarpit "
        "receiver holds at most this many sends; owners are served in turn",
    )
    webhook_max_pending_per_owner: int = Field(
        default=1000,
        ge=1,
        description="Deliveries one owner may have waiting; an event past it is recorded as failed at once "
        "(redeliver it later), and test sends and redeliveries are refused (429)",
    )
    webhook_manual_sends_per_minute: int = Field(
        default=10, ge=1, description="Test events and redeliveries one account may ask for per minute"
    )

    @model_validator(mode="after")
    def _scratch_holds_a_file(self) -> Self:
        if not self.max_upload_bytes <= self.scratch_bytes_per_account <= self.scratch_bytes:
            raise ValueError(
                "EA_SCRATCH_BYTES_PER_ACCOUNT must hold a file of EA_MAX_UPLOAD_BYTES and fit "
                "EA_SCRATCH_BYTES"
            )
        return self

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> Self:
        # A lease shorter than a send would let a second dispatcher claim a delivery still in flight.
        if self.webhook_lease_s <= self.webhook_timeout_s:
            raise ValueError("webhook_lease_s must be longer than webhook_timeout_s")
        return self

    @model_validator(mode="after")
    def _internal_token_in_production(self) -> Self:
        # Without it, anything that reaches the auth service can introspect credentials.
        if self.environment is Environment.PRODUCTION and self.internal_token is None:
            raise ValueError("set EA_INTERNAL_TOKEN: production requires it between the gateway and auth")
        return self

    def _secrets(self) -> dict[str, str]:
        token = self.internal_token
        return {**super()._secrets(), **({"internal_token": token.get_secret_value()} if token else {})}
