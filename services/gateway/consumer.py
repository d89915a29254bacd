"""The gateway's one Kafka subscriber: pipeline status events move the job table."""

from collections.abc import Callable

from faststream.kafka import KafkaBroker

from emotion_contract.events import AnalysisCompleted, AnalysisFailed, AnalysisProgress, Topic
from shared.claim_check import ClaimCheck
from shared.service import subscriber_options

from .settings import Settings
from .state import Gateway
from .status_events import apply_status_event

STATUS_TOPICS = (Topic.ANALYSIS_PROGRESS, Topic.ANALYSIS_COMPLETED, Topic.ANALYSIS_FAILED)


def add_status_subscriber(
    broker: KafkaBroker, settings: Settings, claims: ClaimCheck, gateway: Callable[[], Gateway]
) -> None:
    """Subscribe to the status topics; `gateway` gives the resources the lifespan built."""

    async def on_status_event(event: AnalysisProgress | AnalysisCompleted | AnalysisFailed) -> None:
        resources = gateway()
        changed = await apply_status_event(event, resources.sessions)
        outcome = "applied" if changed else "ignored"
        resources.metrics.events_consumed.labels(type(event).__name__, outcome).inc()

    subscriber = broker.subscriber(
        *(topic.value for topic in STATUS_TOPICS), **subscriber_options(settings, claims)
    )
    subscriber(on_status_event)
