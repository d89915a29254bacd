"""Prometheus metrics the consumer services share (the broker middleware counts events per topic)."""

from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Histogram

InferenceModality = Literal["text", "video", "audio", "fusion", "speakers"]


class InferenceObserver(Protocol):
    """Takes the seconds one job's model inference of `modality` took over its `utterances`."""

    def __call__(self, modality: InferenceModality, seconds: float, utterances: int) -> None: ...


class StageMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.stage_seconds = Histogram(
            "ea_stage_seconds",
            "Seconds one job spent in a stage, by outcome",
            ["stage", "outcome"],
            registry=registry,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320, 640),
        )
        self.inference_seconds_per_utterance = Histogram(
            "ea_inference_seconds_per_utterance",
            "Seconds a job's model inference took divided by its utterances, by modality",
            ["modality"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def observe_inference(self, modality: InferenceModality, seconds: float, utterances: int) -> None:
        if utterances > 0:
            self.inference_seconds_per_utterance.labels(modality).observe(seconds / utterances)
