"""Consumer lag arithmetic, and the gauge's series following the topics a poll found."""

from prometheus_client import CollectorRegistry

from shared.consumer_lag import ConsumerLagGauge, PartitionOffsets, lag_by_topic, next_poll_delay


def _offsets(
    topic: str, partition: int, *, log_start: int, end: int, committed: int | None
) -> PartitionOffsets:
    return PartitionOffsets(
        topic=topic, partition=partition, log_start=log_start, end=end, committed=committed
    )


def test_lag_is_the_end_minus_the_committed_offset_summed_over_partitions() -> None:
    offsets = [
        _offsets("a", 0, log_start=0, end=10, committed=4),
        _offsets("a", 1, log_start=0, end=7, committed=7),
        _offsets("b", 0, log_start=0, end=3, committed=1),
    ]
    assert lag_by_topic(offsets) == {"a": 6, "b": 2}


def test_a_partition_never_committed_counts_from_its_log_start() -> None:
    assert lag_by_topic([_offsets("a", 0, log_start=5, end=12, committed=None)]) == {"a": 7}
    assert lag_by_topic([_offsets("a", 0, log_start=0, end=12, committed=None)]) == {"a": 12}


def test_a_committed_offset_below_the_log_start_counts_from_the_log_start() -> None:
    """Messages below the log start were deleted: the group resumes at the log start."""
    assert lag_by_topic([_offsets("a", 0, log_start=8, end=10, committed=2)]) == {"a": 2}


def test_lag_is_never_negative() -> None:
    assert lag_by_topic([_offsets("a", 0, log_start=0, end=3, committed=5)]) == {"a": 0}


def test_no_partitions_no_lag() -> None:
    assert lag_by_topic([]) == {}


def test_the_gauge_shows_each_topic_and_drops_what_a_later_poll_lacks() -> None:
    registry = CollectorRegistry()
    gauge = ConsumerLagGauge(registry)

    def lag(group: str, topic: str) -> float | None:
        return registry.get_sample_value("ea_consumer_lag", {"group": group, "topic": topic})

    gauge.show("fusion", {"a": 3, "b": 0})
    gauge.show("other", {"a": 1})
    assert (lag("fusion", "a"), lag("fusion", "b"), lag("other", "a")) == (3, 0, 1)
    gauge.show("fusion", {"b": 2})
    assert (lag("fusion", "a"), lag("fusion", "b"), lag("other", "a")) == (None, 2, 1)
    gauge.hide("fusion")
    assert (lag("fusion", "b"), lag("other", "a")) == (None, 1)


def test_polls_come_at_the_interval_and_sooner_after_a_failure() -> None:
    assert next_poll_delay(10.0, failures=0) == 10.0
    assert [next_poll_delay(10.0, failures=n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert next_poll_delay(0.5, failures=1) == 0.5
