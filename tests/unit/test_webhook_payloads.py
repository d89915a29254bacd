"""Webhook bodies: `{type, timestamp, data}`, with the analysis as the REST API shows it."""

import json
import uuid
from datetime import UTC, datetime

import pytest

from emotion_contract.analyses import AnalysisStatus
from emotion_contract.events import Stage
from emotion_contract.results import AnalysisResult, UtteranceResult, emotion_scores, sentiment_scores
from emotion_contract.webhooks import WebhookEventType
from services.gateway.schemas import analysis_of
from services.gateway.webhooks.payloads import event_body, event_payload
from shared.db.models import Job
from shared.db.webhook_models import WebhookEvent

EVENT_AT = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)


def _result() -> AnalysisResult:
    utterance = UtteranceResult(
        index=0,
        start_time=0.0,
        end_time=1.5,
        text="hello there",
        emotions=emotion_scores([0.05, 0.05, 0.05, 0.5, 0.1, 0.15, 0.1]),
        sentiments=sentiment_scores([0.1, 0.2, 0.7]),
    )
    return AnalysisResult(model_version="bundle-1", duration_s=1.5, language="en", utterances=[utterance])


def _job(**changes: object) -> Job:
    job = Job(
        id=uuid.uuid4(),
        owner="owner-a",
        bucket="uploads",
        object_key="owner-a/x/clip.mp4",
        filename="clip.mp4",
        size_bytes=1234,
        status=AnalysisStatus.PROCESSING,
        stage=Stage.FUSE,
        attempt=2,
        created_at=datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC),
        updated_at=datetime(2026, 3, 1, 12, 0, 9, tzinfo=UTC),
    )
    for name, value in changes.items():
        setattr(job, name, value)
    return job


def _event(type_: WebhookEventType, job: Job | None, stage: Stage | None = None) -> WebhookEvent:
    return WebhookEvent(
        id=uuid.uuid4(),
        owner="owner-a",
        type=type_,
        job_id=job.id if job is not None else None,
        stage=stage,
        attempt=job.attempt if job is not None else None,
        created_at=EVENT_AT,
    )


def test_progress_shows_the_stage_of_the_event_not_the_current_one() -> None:
    job = _job(status=AnalysisStatus.COMPLETED, stage=Stage.FUSE, result=_result().model_dump(mode="json"))
    payload = event_payload(_event(WebhookEventType.ANALYSIS_PROGRESS, job, Stage.TRANSCRIBE), job)
    assert payload.type is WebhookEventType.ANALYSIS_PROGRESS
    assert payload.timestamp == EVENT_AT
    assert payload.data["status"] == "processing" and payload.data["stage"] == "transcribe"
    assert payload.data["result"] is None and payload.data["completed_at"] is None
    assert payload.data["id"] == str(job.id) and payload.data["attempt"] == 2


def test_completed_carries_the_analysis_with_its_result() -> None:
    job = _job(
        status=AnalysisStatus.COMPLETED,
        result=_result().model_dump(mode="json"),
        completed_at=datetime(2026, 3, 1, 12, 0, 9, tzinfo=UTC),
    )
    payload = event_payload(_event(WebhookEventType.ANALYSIS_COMPLETED, job, Stage.FUSE), job)
    assert payload.data == analysis_of(job).model_dump(mode="json")
    assert payload.data["result"]["utterances"][0]["text"] == "hello there"


def test_failed_carries_the_error() -> None:
    job = _job(
        status=AnalysisStatus.FAILED, stage=Stage.ENCODE_AUDIO, error_code="no_audio", error_reason="silent"
    )
    payload = event_payload(_event(WebhookEventType.ANALYSIS_FAILED, job, Stage.ENCODE_AUDIO), job)
    assert payload.data["error"] == {"code": "no_audio", "stage": "encode_audio", "message": "silent"}
    assert payload.data["status"] == "failed" and payload.data["result"] is None


def test_a_test_event_carries_its_own_data() -> None:
    event = _event(WebhookEventType.WEBHOOK_TEST, None)
    event.data = {"message": "hi"}
    body = json.loads(event_body(event, None))
    assert body == {"type": "webhook.test", "timestamp": "2026-03-01T12:00:05Z", "data": {"message": "hi"}}


def test_an_analysis_event_without_its_job_cannot_be_built() -> None:
    job = _job()
    with pytest.raises(ValueError, match="needs its job"):
        event_payload(_event(WebhookEventType.ANALYSIS_PROGRESS, job, Stage.UPLOAD), None)
