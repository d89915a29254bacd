"""Prometheus metrics the consumer services share (the broker middleware counts events per topic)."""

from prometheus_client import CollectorRegistry, Histogram


class StageMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.stage_seconds = Histogram(
            "ea_stage_seconds",
            "Seconds one job spent in a stage, by outcome",
            ["stage", "outcome"],
            registry=registry,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320, 640),
        )
