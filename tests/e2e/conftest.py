"""The whole system as separate processes: broker, S3 server, PostgreSQL and the six services, with the
default bundle published to the object store. Started once for the e2e tier."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack import LocalStack, ServiceName, ServiceSpec, StackConfig, sign_up
from tests.bundle_fixtures import bundle_dir
from tests.media_factory import MediaSet, make_media_set

__all__ = ["bundle_dir"]

MAX_UPLOAD_BYTES = 8 * 1024 * 1024
SERVICE_ENV = {
    "EA_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
    "EA_KAFKA_SESSION_TIMEOUT_MS": "6000",
    "EA_TORCH_THREADS": "2",
    "EA_STUCK_JOB_TIMEOUT_S": "120",
    "EA_SWEEP_INTERVAL_S": "5",
    # The webhook receiver listens on loopback; a short lease resends a crashed gateway's delivery soon.
    "EA_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
    "EA_OUTBOUND_PORTS": "[]",  # the tests' receivers and file servers listen on ports of their own
    "EA_WEBHOOK_TIMEOUT_S": "2",
    "EA_WEBHOOK_LEASE_S": "4",
    "EA_WEBHOOK_BACKOFF_BASE_S": "0.5",
    # Low, so that transcripts, features and results cross the broker by claim check here.
    "EA_CLAIM_CHECK_BYTES": "4096",
}


@pytest.fixture(scope="session")
def full_stack(
    tmp_path_factory: pytest.TempPathFactory, shared_tmp_dir: Path, bundle_dir: Path
) -> Iterator[LocalStack]:
    root = tmp_path_factory.mktemp("e2e-stack")
    services = [
        ServiceSpec.default(name, fixed_ports=False).model_copy(
            update={
                "extra_env": {
                    **SERVICE_ENV,
                    "EA_WORK_DIR": str(root / "work" / name.value),
                    "EA_BUNDLE_CACHE_DIR": str(root / "bundles" / name.value),
                },
                "ready_timeout_s": 180.0,
            }
        )
        for name in ServiceName
    ]
    config = StackConfig(
        root=root,
        postgres_data_dir=shared_tmp_dir / "e2e-postgres",
        services=services,
        bundle_dir=bundle_dir,
        stop_grace_s=5.0,
        database_name=f"e2e_{uuid.uuid4().hex[:16]}",
    )
    with LocalStack(config) as stack:
        yield stack


@pytest.fixture(scope="session")
def api_key(full_stack: LocalStack) -> str:
    """The first key of an account signed up through the gateway, as a new customer would."""
    return sign_up(full_stack.service_url(ServiceName.GATEWAY)).api_key


@pytest.fixture(scope="session")
def api(full_stack: LocalStack, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=full_stack.service_url(ServiceName.GATEWAY) + "/v1",
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=httpx.Timeout(30.0, read=120.0),
    ) as client:
        yield client


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaSet:
    return make_media_set(tmp_path_factory.mktemp("media"))
