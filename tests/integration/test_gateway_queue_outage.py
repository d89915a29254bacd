"""A broker outage at submission, for real: a gateway on a Kafka-protocol broker of its own (Tansu), which
the test stops and starts again. The refused analysis fails with `queue_unavailable`, gives its units back
and keeps its upload; sending its key again once the broker is back queues it as a new attempt."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devstack.config import REPO_ROOT
from devstack.processes import ManagedProcess, free_port
from devstack.stack import await_broker, broker_command
from services.gateway.main import create_app
from services.gateway.settings import Settings
from shared.storage import ObjectStore
from tests.integration.gateway_fixtures import Account, error_of, reading_requested, upload
from tests.servers import serve_app

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.gateway_fixtures"]

BROKER_START_TIMEOUT_S = 30.0
RESUBMISSIONS = 20
EVENT_TIMEOUT_S = 15.0


@dataclass
class Broker:
    """A Tansu broker on a fixed port that the test can stop and start again (its topics live in memory)."""

    port: int
    log_path: Path
    process: ManagedProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = ManagedProcess.spawn(
            "outage-broker",
            broker_command("127.0.0.1", self.port),
            log_path=self.log_path,
            env=dict(os.environ),
            cwd=REPO_ROOT,
            attached=True,
            port=self.port,
        )
        await_broker("127.0.0.1", self.port, self.process, timeout_s=BROKER_START_TIMEOUT_S, partitions=1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace_s=5.0)
            self.process = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(port=free_port(), log_path=tmp_path / "broker.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
async def outage_gateway(gateway_settings: Settings, broker: Broker) -> AsyncIterator[str]:
    """A second gateway (same database and auth service as the module's) whose broker is the test's."""
    settings = gateway_settings.model_copy(
        update={
            "service_name": "gateway-outage",
            "kafka_bootstrap_servers": broker.bootstrap,
            "publish_timeout_s": 3.0,
        }
    )
    async with serve_app(create_app(settings)) as url:
        yield url
        if broker.process is None:  # a test that failed with the broker down: let the gateway close cleanly
            await asyncio.to_thread(broker.start)


async def test_an_analysis_refused_by_a_broker_outage_is_retried_by_sending_its_key_again(
    outage_gateway: str,
    broker: Broker,
    account: Account,
    video: bytes,
    object_store: ObjectStore,
    gateway_settings: Settings,
) -> None:
    headers = {"Authorization": f"Bearer {account.key}"}
    async with httpx.AsyncClient(base_url=outage_gateway, headers=headers, timeout=30) as client:
        key = await upload(client, "clip.mp4", video)
        used_before = (await client.get("/v1/usage")).json()["analyses"]["used"]
        await asyncio.to_thread(broker.stop)

        refused = await client.post("/v1/analyses", json={"key": key})

        assert error_of(refused) == (503, "queue_unavailable")
        assert key in refused.json()["error"]["message"]
        failed = (await client.get("/v1/analyses", params={"limit": 1})).json()["items"][0]
        assert failed["status"] == "failed" and failed["error"]["code"] == "queue_unavailable"
        assert (await client.get("/v1/usage")).json()["analyses"]["used"] == used_before
        assert object_store.exists(gateway_settings.uploads_bucket, key)

        await asyncio.to_thread(broker.start)
        async with reading_requested(broker.bootstrap) as events:
            # A client retrying: the producer may need a few tries to find the restarted broker.
            for _ in range(RESUBMISSIONS):
                retried = await client.post("/v1/analyses", json={"key": key})
                if retried.status_code != 503:
                    break
                assert error_of(retried) == (503, "queue_unavailable")
                await asyncio.sleep(0.5)
            assert retried.status_code == 201, retried.text
            body = retried.json()
            assert body["id"] == failed["id"] and body["status"] == "queued" and body["error"] is None
            assert body["attempt"] > failed["attempt"]
            # The producer may still deliver a refused attempt's request once the broker is back; the
            # pipeline's status from an attempt other than the job's current one is ignored.
            job_id = uuid.UUID(body["id"])
            async with asyncio.timeout(EVENT_TIMEOUT_S):
                while body["attempt"] not in {event.attempt for event in events.of(job_id)}:
                    await events.wait_for(job_id, count=len(events.of(job_id)) + 1, timeout_s=EVENT_TIMEOUT_S)
            assert (await client.get("/v1/usage")).json()["analyses"]["used"] == used_before + 1

            again = await client.post("/v1/analyses", json={"key": key})
            assert again.status_code == 200 and again.json()["attempt"] == body["attempt"]
            assert (await client.get("/v1/usage")).json()["analyses"]["used"] == used_before + 1
