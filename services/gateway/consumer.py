"""The gateway's one Kafka subscriber: pipeline status events move the job table."""

from collections.abc import Callable

from faststream.kafka import KafkaBroker

from emotion_contract.events import AnalysisCompleted, AnalysisFailed, AnalysisProgress, DeadLettered, Topic
from shared.claim_check import ClaimCheck
from shared.poison import Poisoned, poison_middleware
from shared.service import subscriber_options

from .db.jobs import change_job
from .job_machine import Fail
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

    async def on_unreadable(poisoned: Poisoned) -> None:
        await fail_unreadable(poisoned, gateway(), claims, settings.service_name)

    broker.add_middleware(poison_middleware(on_unreadable))
    subscriber = broker.subscriber(
        *(topic.value for topic in STATUS_TOPICS), **subscriber_options(settings, claims)
    )
    subscriber(on_status_event)


async def fail_unreadable(poisoned: Poisoned, gateway: Gateway, claims: ClaimCheck, consumer: str) -> None:
    """A status message no one can read: its job fails where it is (whatever its attempt, where the
    message names none), and the message is dead-lettered, by its place and the reason only."""
    gateway.metrics.events_consumed.labels("unreadable", "dead_lettered").inc()
    if poisoned.job_id is None:
        return
    failed = Fail(
        stage=None,
        code=poisoned.code,
        reason="a status message of this analysis could not be read; the operators have the details",
        attempt=poisoned.attempt,
    )
    async with gateway.sessions() as session:
        await change_job(session=session, job_id=poisoned.job_id, change=failed)
    dead = DeadLettered(
        job_id=poisoned.job_id,
        attempt=poisoned.attempt or 1,
        consumer=consumer,
        topic=poisoned.topic,
        partition=poisoned.partition,
        offset=poisoned.offset,
        deliveries=1,
        code=poisoned.code,
        last_error=poisoned.reason,
        message_id=poisoned.message_id,
    )
    await claims.publish(gateway.broker, dead)
