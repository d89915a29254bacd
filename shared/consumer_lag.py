"""Consumer lag, the gauge `ea_consumer_lag{group,topic}`: the messages a consumer group has yet to read.

Each consumer service polls its own group in the background: the group's committed offsets against the end
offsets of its topics' partitions. A partition the group never committed on counts from its log start, where
the groups begin (`auto_offset_reset="earliest"`). When the broker refuses a query the gauge is left absent
rather than stale, the service carries on, and the next poll comes sooner than the interval so that a passing
refusal leaves only a short gap.
"""

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Final, NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped, unused-ignore]
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped, unused-ignore]
from prometheus_client import CollectorRegistry, Gauge

DEFAULT_INTERVAL_S: Final = 10.0
REQUEST_TIMEOUT_MS: Final = 5_000
# One poll makes four requests in a row; past this it is abandoned, and the next poll starts afresh.
POLL_TIMEOUT_S: Final = 4 * REQUEST_TIMEOUT_MS / 1000
NO_COMMITTED_OFFSET: Final = -1
RETRY_AFTER_FAILURE_S: Final = 1.0
UNKNOWN_TOPIC_OR_PARTITION: Final = 3

logger = logging.getLogger(__name__)


class PartitionOffsets(NamedTuple):
    topic: str
    partition: int
    log_start: int
    end: int
    committed: int | None
    """None where the group has no committed offset for this partition."""

    @property
    def lag(self) -> int:
        # Below the log start the messages are gone: the group resumes from the log start.
        position = self.log_start if self.committed is None else max(self.committed, self.log_start)
        return max(self.end - position, 0)


def next_poll_delay(interval_s: float, failures: int) -> float:
    """Seconds until the next poll: the interval, or after `failures` failed polls in a row a retry that
    starts at a second and doubles up to the interval."""
    if failures == 0:
        return interval_s
    return min(interval_s, RETRY_AFTER_FAILURE_S * 2.0 ** (failures - 1))


def lag_by_topic(offsets: Iterable[PartitionOffsets]) -> dict[str, int]:
    """Messages behind per topic: the sum over its partitions."""
    lags: dict[str, int] = {}
    for partition in offsets:
        lags[partition.topic] = lags.get(partition.topic, 0) + partition.lag
    return lags


class ConsumerLagGauge:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.gauge = Gauge(
            "ea_consumer_lag",
            "Messages the consumer group has yet to read, by topic (summed over partitions)",
            ["group", "topic"],
            registry=registry,
        )
        self._shown: set[tuple[str, str]] = set()

    def show(self, group: str, lags: dict[str, int]) -> None:
        """Set the group's series to `lags`; topics not in it lose their series."""
        for topic, lag in lags.items():
            self.gauge.labels(group, topic).set(lag)
        current = {(group, topic) for topic in lags}
        for labels in {shown for shown in self._shown if shown[0] == group} - current:
            self.gauge.remove(*labels)
        self._shown = {shown for shown in self._shown if shown[0] != group} | current

    def hide(self, group: str) -> None:
        self.show(group, {})


class ConsumerLagPoller:
    """Polls `group`'s lag on `topics` every `interval_s` into `ea_consumer_lag`, from `start` to `stop`."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        group: str,
        topics: Sequence[str],
        registry: CollectorRegistry,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.group = group
        self.topics = list(dict.fromkeys(topics))
        self.interval_s = interval_s
        self.gauge = ConsumerLagGauge(registry)
        self._task: asyncio.Task[None] | None = None
        self._admin: Any = None
        self._consumer: Any = None
        self._failures = 0

    def add_topics(self, *topics: str) -> None:
        """Watch `topics` too (a service learns its topics as it registers its handlers)."""
        self.topics = list(dict.fromkeys([*self.topics, *topics]))

    async def start(self) -> None:
        if self._task is None and self.topics:
            self._task = asyncio.create_task(self._run(), name=f"consumer-lag-{self.group}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close_clients()

    async def poll_once(self) -> dict[str, int] | None:
        """Query the broker and update the gauge; the lag per topic, or None when the query failed."""
        try:
            lags = await asyncio.wait_for(self._query(), POLL_TIMEOUT_S)
        except Exception as exc:
            # The broker is away or refuses an admin request: no lag rather than a stale one.
            self.gauge.hide(self.group)
            await self._close_clients()
            if not self._failures:
                logger.warning("consumer lag of group %s unavailable: %r", self.group, exc)
            self._failures += 1
            return None
        if self._failures:
            logger.info("consumer lag of group %s available again", self.group)
        self._failures = 0
        self.gauge.show(self.group, lags)
        return lags

    async def _run(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(next_poll_delay(self.interval_s, self._failures))

    async def _query(self) -> dict[str, int]:
        admin, consumer = await self._clients()
        described = await admin.describe_topics(self.topics)
        # A topic not created yet holds nothing to read; any other error (no leader yet, say) fails the poll.
        refused = [t["topic"] for t in described if t["error_code"] not in (0, UNKNOWN_TOPIC_OR_PARTITION)]
        if refused:
            raise RuntimeError(f"the broker could not describe topics {refused}")
        partitions = [
            TopicPartition(topic["topic"], partition["partition"])
            for topic in described
            if topic["error_code"] == 0
            for partition in topic["partitions"]
        ]
        if not partitions:
            return {}
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(self.group, partitions=partitions)
        return lag_by_topic(
            PartitionOffsets(
                topic=tp.topic,
                partition=tp.partition,
                log_start=starts[tp],
                end=ends[tp],
                committed=_committed_offset(committed.get(tp)),
            )
            for tp in partitions
        )

    async def _clients(self) -> tuple[Any, Any]:
        # Kept before they start, so that `_close_clients` also closes one whose start failed.
        if self._admin is None:
            self._admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers, request_timeout_ms=REQUEST_TIMEOUT_MS
            )
            await self._admin.start()
        if self._consumer is None:
            # No group: this consumer only asks for offsets, it never joins or commits.
            self._consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap_servers,
                group_id=None,
                enable_auto_commit=False,
                request_timeout_ms=REQUEST_TIMEOUT_MS,
            )
            await self._consumer.start()
        return self._admin, self._consumer

    async def _close_clients(self) -> None:
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()


def _committed_offset(committed: Any) -> int | None:
    if committed is None or committed.offset == NO_COMMITTED_OFFSET:
        return None
    return int(committed.offset)
