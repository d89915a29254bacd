"""The consumer lag poller against the local stack's real broker (Tansu)."""

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped, unused-ignore]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped, unused-ignore]
from aiokafka.structs import OffsetAndMetadata  # type: ignore[import-untyped, unused-ignore]
from prometheus_client import CollectorRegistry

from shared.consumer_lag import ConsumerLagPoller

pytestmark = pytest.mark.integration

PARTITIONS = 3
MESSAGES_PER_PARTITION = (4, 3, 3)


async def _topic_with_messages(bootstrap: str) -> str:
    topic = f"test.lag.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for partition, count in enumerate(MESSAGES_PER_PARTITION):
            for index in range(count):
                await producer.send_and_wait(topic, f"m{index}".encode(), partition=partition)
    finally:
        await producer.stop()
    return topic


async def _commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()})
    finally:
        await consumer.stop()


@pytest.fixture
async def topic(kafka_bootstrap: str) -> str:
    return await _topic_with_messages(kafka_bootstrap)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def poller(
    kafka_bootstrap: str, topic: str, registry: CollectorRegistry
) -> AsyncIterator[ConsumerLagPoller]:
    lag = ConsumerLagPoller(
        bootstrap_servers=kafka_bootstrap,
        group=f"test-group-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        registry=registry,
    )
    yield lag
    await lag.stop()


def _gauge(registry: CollectorRegistry, group: str, topic: str) -> float | None:
    return registry.get_sample_value("ea_consumer_lag", {"group": group, "topic": topic})


async def test_a_group_that_never_committed_lags_by_every_message(
    poller: ConsumerLagPoller, topic: str, registry: CollectorRegistry
) -> None:
    assert await poller.poll_once() == {topic: sum(MESSAGES_PER_PARTITION)}
    assert _gauge(registry, poller.group, topic) == sum(MESSAGES_PER_PARTITION)


async def test_committed_offsets_reduce_the_lag_per_partition(
    kafka_bootstrap: str, poller: ConsumerLagPoller, topic: str, registry: CollectorRegistry
) -> None:
    # Partition 0 read to its end, partition 1 one message in, partition 2 never committed.
    await _commit(kafka_bootstrap, poller.group, {TopicPartition(topic, 0): 4, TopicPartition(topic, 1): 1})
    assert await poller.poll_once() == {topic: 0 + 2 + 3}
    assert _gauge(registry, poller.group, topic) == 5


async def test_the_running_poller_follows_new_messages(
    kafka_bootstrap: str, poller: ConsumerLagPoller, topic: str, registry: CollectorRegistry
) -> None:
    poller.interval_s = 0.05
    await poller.start()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"one more", partition=2)
    finally:
        await producer.stop()
    expected = sum(MESSAGES_PER_PARTITION) + 1
    for _ in range(400):
        if _gauge(registry, poller.group, topic) == expected:
            break
        await asyncio.sleep(0.05)
    assert _gauge(registry, poller.group, topic) == expected


async def test_an_unreachable_broker_leaves_the_gauge_absent_and_is_logged_once(
    topic: str, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    poller = ConsumerLagPoller(
        bootstrap_servers=f"127.0.0.1:{closed_port}",
        group="nobody",
        topics=[topic],
        registry=registry,
    )
    try:
        with caplog.at_level(logging.WARNING, logger="shared.consumer_lag"):
            assert await poller.poll_once() is None
            assert await poller.poll_once() is None
    finally:
        await poller.stop()
    assert _gauge(registry, "nobody", topic) is None
    warnings = [r for r in caplog.records if r.name == "shared.consumer_lag"]
    assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()
