"""`ea_inference_seconds_per_utterance{modality}`: the stages time their model's call, per job, over its
utterances, with the real (small) models of the default bundle."""

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from emotion_contract.events import MediaInfo, ModalityFeatures, Span, Transcript, VideoTrack, VoiceFeatures
from shared.feature_matrix import to_matrix
from shared.media.decode import probe
from shared.metrics import InferenceModality, StageMetrics
from shared.model.bundle import LocalBundle
from shared.model.inference import AudioFeaturizer, FusionPredictor, VideoFeaturizer
from shared.stages import encode_audio_file, fuse, track_video_file
from tests.bundle_fixtures import bundle, bundle_dir
from tests.media_factory import SpeechClip, speech_wav

__all__ = ["bundle", "bundle_dir"]
METRIC = "ea_inference_seconds_per_utterance"


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> SpeechClip:
    return speech_wav(tmp_path_factory.mktemp("inference-media"))


def _spans(speech: SpeechClip) -> list[Span]:
    return [Span(index=i, start=s, end=e, text="") for i, (s, e) in enumerate(speech.spans)]


def _sample(registry: CollectorRegistry, suffix: str, modality: str) -> float | None:
    return registry.get_sample_value(f"{METRIC}_{suffix}", {"modality": modality})


def test_the_audio_stage_observes_one_job_of_seconds_per_utterance(
    speech: SpeechClip, bundle: LocalBundle
) -> None:
    registry = CollectorRegistry()
    metrics = StageMetrics(registry)
    seen: list[tuple[InferenceModality, float, int]] = []

    def observe(modality: InferenceModality, seconds: float, utterances: int) -> None:
        seen.append((modality, seconds, utterances))
        metrics.observe_inference(modality, seconds, utterances)

    encode_audio_file(
        speech.path,
        media=probe(speech.path),
        utterances=_spans(speech),
        featurizer=AudioFeaturizer(bundle, run_untrained=True),
        speech_found=True,
        observe_inference=observe,
    )
    [(modality, seconds, utterances)] = seen
    assert (modality, utterances) == ("audio", 2) and seconds > 0
    assert _sample(registry, "count", "audio") == 1
    assert _sample(registry, "sum", "audio") == pytest.approx(seconds / 2)


def test_no_video_stream_means_no_inference_and_no_observation(
    speech: SpeechClip, bundle: LocalBundle
) -> None:
    registry = CollectorRegistry()
    track_video_file(
        speech.path,
        featurizer=VideoFeaturizer(bundle),
        max_duration_s=60,
        observe_inference=StageMetrics(registry).observe_inference,
    )
    assert _sample(registry, "count", "video") is None


def test_the_fusion_observes_its_prediction(bundle: LocalBundle) -> None:
    rng = np.random.default_rng(3)
    n = 4
    text = ModalityFeatures(features=to_matrix(rng.random((n, 128))), present=[True] * n)
    missing = ModalityFeatures(features=None, present=[False] * n, missing_reason="none here")
    registry = CollectorRegistry()
    fuse(
        transcript=Transcript(
            media=MediaInfo(duration_s=4.0, has_video=False, has_audio=True),
            language="en",
            utterances=[Span(index=i, start=float(i), end=i + 0.9, text="words") for i in range(n)],
            speech_found=True,
            text=text,
        ),
        video_track=VideoTrack(interval_s=0.5, missing_reason="none here"),
        audio=VoiceFeatures(audio=missing),
        predictor=FusionPredictor(bundle),
        bundle_version=bundle.version,
        observe_inference=StageMetrics(registry).observe_inference,
    )
    assert _sample(registry, "count", "fusion") == 1
    assert (_sample(registry, "sum", "fusion") or 0) > 0


def test_a_job_without_utterances_is_not_observed() -> None:
    registry = CollectorRegistry()
    StageMetrics(registry).observe_inference("text", 0.5, 0)
    assert _sample(registry, "count", "text") is None


def test_small_timings_fall_in_millisecond_buckets() -> None:
    registry = CollectorRegistry()
    StageMetrics(registry).observe_inference("text", 0.004, 2)
    le = {"modality": "text", "le": "0.001"}
    assert registry.get_sample_value(f"{METRIC}_bucket", le) == 0
    assert registry.get_sample_value(f"{METRIC}_bucket", {**le, "le": "0.0025"}) == 1
