"""The JSON body of each webhook: `{"type", "timestamp", "data"}`, built when the delivery is sent.

Analysis events carry the analysis as the REST API shows it. A progress event shows the stage it
reports, not the job's current one: deliveries may be sent late or again, and each must still say
what happened at its moment.
"""

from typing import Any

from emotion_contract.analyses import Analysis, AnalysisStatus
from emotion_contract.webhooks import WebhookEventType, WebhookPayload
from shared.db.models import Job
from shared.db.webhook_models import WebhookEvent

from ..schemas import analysis_of


def event_payload(event: WebhookEvent, job: Job | None) -> WebhookPayload:
    """The payload of the event; `job` is the event's job as stored now (None for test events)."""
    return WebhookPayload(type=event.type, timestamp=event.created_at, data=_data(event, job))


def event_body(event: WebhookEvent, job: Job | None) -> bytes:
    """The exact bytes sent and signed."""
    return event_payload(event, job).model_dump_json().encode()


def _data(event: WebhookEvent, job: Job | None) -> dict[str, Any]:
    if event.type is WebhookEventType.WEBHOOK_TEST:
        return dict(event.data or {})
    if job is None or job.id != event.job_id:
        raise ValueError(f"event {event.id} ({event.type.value}) needs its job {event.job_id}")
    match event.type:
        case WebhookEventType.ANALYSIS_COMPLETED:
            analysis = analysis_of(job)
        case WebhookEventType.ANALYSIS_FAILED:
            analysis = analysis_of(job, with_result=False)
        case WebhookEventType.ANALYSIS_PROGRESS:
            analysis = _progress(event, job)
    return analysis.model_dump(mode="json")


def _progress(event: WebhookEvent, job: Job) -> Analysis:
    """The analysis as it was when it entered the event's stage."""
    current = analysis_of(job, with_result=False)
    return current.model_copy(
        update={
            "status": AnalysisStatus.PROCESSING,
            "stage": event.stage,
            "attempt": event.attempt if event.attempt is not None else job.attempt,
            "error": None,
            "result": None,
            "updated_at": event.created_at,
            "completed_at": None,
        }
    )
