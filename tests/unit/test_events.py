import uuid

import numpy as np
import pytest
from pydantic import ValidationError

from emotion_contract.events import (
    AnalysisCompleted,
    AnalysisFailed,
    AnalysisProgress,
    AnalysisRequested,
    AudioFeaturesReady,
    DeadLettered,
    Event,
    FeatureMatrix,
    MediaInfo,
    ModalityFeatures,
    Span,
    Stage,
    Topic,
    TranscriptReady,
    VideoFeaturesReady,
)
from emotion_contract.results import AnalysisResult, UtteranceResult, emotion_scores, sentiment_scores
from shared.feature_matrix import to_array, to_matrix

JOB = uuid.UUID("00000000-0000-0000-0000-000000000001")


def _requested(attempt: int = 1) -> AnalysisRequested:
    return AnalysisRequested(
        job_id=JOB,
        attempt=attempt,
        bucket="uploads",
        object_key="uploads/a/b/talk.mp4",
        filename="talk.mp4",
        size_bytes=10,
    )


def test_feature_matrix_round_trips_float32() -> None:
    array = np.random.default_rng(0).standard_normal((5, 128)).astype(np.float32)
    matrix = to_matrix(array)
    restored = to_array(FeatureMatrix.model_validate_json(matrix.model_dump_json()))
    assert restored.shape == (5, 128)
    assert np.array_equal(restored, array)


def test_feature_matrix_refuses_short_data_and_non_matrices() -> None:
    matrix = to_matrix(np.ones((2, 4), dtype=np.float32))
    with pytest.raises(ValidationError):
        FeatureMatrix(rows=3, cols=4, data=matrix.data)
    with pytest.raises(ValueError):
        to_matrix(np.ones(4, dtype=np.float32))


def test_event_id_is_stable_per_job_topic_and_attempt() -> None:
    first, again = _requested(), _requested()
    assert first.event_id == again.event_id
    assert first.event_id != _requested(attempt=2).event_id
    progress = [AnalysisProgress(job_id=JOB, stage=s, service="x") for s in (Stage.TRANSCRIBE, Stage.FUSE)]
    assert progress[0].event_id != progress[1].event_id
    assert first.key == str(JOB).encode()


def test_every_topic_has_exactly_one_event_model() -> None:
    models: list[type[Event]] = [
        AnalysisRequested,
        TranscriptReady,
        VideoFeaturesReady,
        AudioFeaturesReady,
        AnalysisProgress,
        AnalysisCompleted,
        AnalysisFailed,
        DeadLettered,
    ]
    assert sorted(m.TOPIC for m in models) == sorted(Topic)


def test_events_survive_json_and_carry_schema_version() -> None:
    spans = [Span(index=0, start=0.0, end=1.5, text="hello")]
    features = ModalityFeatures(features=to_matrix(np.zeros((1, 128))), present=[True])
    event = TranscriptReady(
        job_id=JOB,
        bucket="b",
        object_key="k",
        media=MediaInfo(duration_s=2.0, has_video=True, has_audio=True),
        bundle_version="v",
        utterances=spans,
        text=features,
        speech_found=True,
    )
    payload = event.model_dump_json()
    assert '"schema_version":1' in payload
    assert TranscriptReady.model_validate_json(payload) == event


def test_span_refuses_end_before_start() -> None:
    with pytest.raises(ValidationError):
        Span(index=0, start=2.0, end=1.0, text="")


def test_result_distributions_are_validated() -> None:
    emotions = emotion_scores([0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.1])
    sentiments = sentiment_scores([0.2, 0.3, 0.5])
    assert emotions[0].label == "joy" and sentiments[0].label == "positive"
    utterance = UtteranceResult(
        index=0, start_time=0, end_time=1, text="hi", emotions=emotions, sentiments=sentiments
    )
    result = AnalysisResult(model_version="v", duration_s=1.0, utterances=[utterance])
    assert AnalysisResult.model_validate_json(result.model_dump_json()) == result
    with pytest.raises(ValidationError):  # does not sum to 1
        UtteranceResult(
            index=0,
            start_time=0,
            end_time=1,
            text="",
            emotions=emotion_scores([0.5] * 7),
            sentiments=sentiments,
        )
    with pytest.raises(ValidationError):  # not sorted
        UtteranceResult(
            index=0,
            start_time=0,
            end_time=1,
            text="",
            emotions=list(reversed(emotions)),
            sentiments=sentiments,
        )
    with pytest.raises(ValueError):
        emotion_scores([1.0])
