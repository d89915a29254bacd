"""A broker outage at submission, for real: a gateway on a Kafka-protocol broker of its own (Tansu), which
the test stops and starts again. The analysis is accepted and charged while the broker is down (its
`analysis.requested` waits in the Kafka outbox, committed with the job), and the relay publishes it once
the broker is back, with nothing asked of the client."""

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
from tests.integration.gateway_fixtures import Account, reading_requested, upload
from tests.servers import serve_app

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.gateway_fixtures"]

BROKER_START_TIMEOUT_S = 30.0
EVENT_TIMEOUT_S = 30.0


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


@pytest.fixture(scope="module")
def gateway_settings(gateway_settings: Settings) -> Settings:
    """The module's gateway (it registers the account) relays nothing: the outbox is the outage gateway's."""
    return gateway_settings.model_copy(update={"kafka_outbox_relay": False})


@pytest.fixture
async def outage_gateway(gateway_settings: Settings, broker: Broker) -> AsyncIterator[str]:
    """A second gateway (same database and auth service as the module's) whose broker is the test's."""
    settings = gateway_settings.model_copy(
        update={
            "service_name": "gateway-outage",
            "kafka_bootstrap_servers": broker.bootstrap,
            "publish_timeout_s": 3.0,
            "kafka_outbox_relay": True,
            "kafka_outbox_poll_interval_s": 0.5,
        }
    )
    async with serve_app(create_app(settings)) as url:
        yield url
        if broker.process is None:  # a test that failed with the broker down: let the gateway close cleanly
            await asyncio.to_thread(broker.start)


async def test_an_analysis_sent_during_a_broker_outage_is_queued_and_reaches_the_broker_once_it_is_back(
    outage_gateway: str,
    broker: Broker,
    account: Account,
    video: bytes,
) -> None:
    headers = {"Authorization": f"Bearer {account.key}"}
    async with httpx.AsyncClient(base_url=outage_gateway, headers=headers, timeout=30) as client:
        key = await upload(client, "clip.mp4", video)
        used_before = (await client.get("/v1/usage")).json()["analyses"]["used"]
        await asyncio.to_thread(broker.stop)

        accepted = await client.post("/v1/analyses", json={"key": key})

        assert accepted.status_code == 201, accepted.text
        body = accepted.json()
        assert (body["status"], body["attempt"], body["error"]) == ("queued", 1, None)
        assert (await client.get("/v1/usage")).json()["analyses"]["used"] == used_before + 1
        await asyncio.sleep(2.0)  # the relay tries, and the broker does not take it
        still = (await client.get(f"/v1/analyses/{body['id']}")).json()
        assert (still["status"], still["attempt"]) == ("queued", 1)

        await asyncio.to_thread(broker.start)
        async with reading_requested(broker.bootstrap) as events:
            job_id = uuid.UUID(body["id"])
            arrived = await events.wait_for(job_id, count=1, timeout_s=EVENT_TIMEOUT_S)
            assert {event.attempt for event in arrived} == {1}  # at least once: the producer may retry
            assert arrived[0].filename == "clip.mp4"

        again = await client.post("/v1/analyses", json={"key": key})
        assert again.status_code == 200 and again.json()["id"] == body["id"]
        assert (await client.get("/v1/usage")).json()["analyses"]["used"] == used_before + 1
