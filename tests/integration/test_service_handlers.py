"""Each pipeline service's handler on faststream's `TestKafkaBroker` (the broker in memory; the S3 server,
PostgreSQL, the models and ffmpeg real): every handler returns its next event and the kit publishes it, the
lifespan's resources reach the handlers through the broker's context, and a file the stage cannot read
ends as the job's failure. The same services run as processes in tests/e2e.

One short spoken clip goes through the four handlers in order: transcriber, video encoder, audio encoder,
fusion."""

import importlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from faststream.kafka import TestKafkaBroker

from devstack import LocalStack
from emotion_contract.errors import FailureCode
from emotion_contract.events import (
    AnalysisCompleted,
    AnalysisFailed,
    AnalysisProgress,
    AnalysisRequested,
    AudioFeaturesReady,
    Event,
    Stage,
    Topic,
    TranscriptReady,
    VideoFeaturesReady,
)
from shared.db import FusionPart
from shared.service import publish
from shared.storage import ObjectStore
from tests.bundle_fixtures import bundle_dir
from tests.integration.db_fixtures import job_row
from tests.media_factory import random_bytes, require_tools, speech_wav, video_with_audio

pytest_plugins = ["tests.integration.db_fixtures"]
pytestmark = pytest.mark.integration
__all__ = ["bundle_dir"]

BUCKET = "uploads"
# What each service publishes (and the tests listen to): its progress, its failures, its output.
OUTPUT_OF = {
    "transcriber": Topic.TRANSCRIPT_READY,
    "video_encoder": Topic.FEATURES_VIDEO,
    "audio_encoder": Topic.FEATURES_AUDIO,
    "fusion": Topic.ANALYSIS_COMPLETED,
}
EVENT_OF: dict[Topic, type[Event]] = {
    Topic.ANALYSIS_PROGRESS: AnalysisProgress,
    Topic.ANALYSIS_FAILED: AnalysisFailed,
    Topic.TRANSCRIPT_READY: TranscriptReady,
    Topic.FEATURES_VIDEO: VideoFeaturesReady,
    Topic.FEATURES_AUDIO: AudioFeaturesReady,
    Topic.ANALYSIS_COMPLETED: AnalysisCompleted,
}


@dataclass
class Published:
    events: list[Event] = field(default_factory=list)

    def of(self, job_id: uuid.UUID) -> list[Event]:
        return [event for event in self.events if event.job_id == job_id]


@dataclass
class Service:
    module: ModuleType
    published: Published


@pytest.fixture(scope="module")
def service_env(stack: LocalStack, bundle_dir: Path, migrated_database_url: str) -> Iterator[dict[str, str]]:
    env = {
        **stack.env(),
        "EA_BUNDLE_URI": str(bundle_dir),
        "EA_DATABASE_URL": migrated_database_url,
        "EA_MAX_DELIVERIES": "3",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield env


def fresh_module(name: str) -> ModuleType:
    """The service's app module, imported under the test's environment (its settings are read at import)."""
    module_name = f"services.{name}.app"
    if module_name in sys.modules:
        return importlib.reload(sys.modules[module_name])
    return importlib.import_module(module_name)


@pytest.fixture(scope="module")
async def services(service_env: dict[str, str]) -> AsyncIterator[dict[str, Service]]:
    assert os.environ["EA_BUNDLE_URI"] == service_env["EA_BUNDLE_URI"]
    running: dict[str, Service] = {}
    for name, output in OUTPUT_OF.items():
        module = fresh_module(name)
        published = Published()
        for topic in (Topic.ANALYSIS_PROGRESS, Topic.ANALYSIS_FAILED, output):
            listen = module.kit.broker.subscriber(topic.value, group_id=f"test-{name}")
            listen(collector(EVENT_OF[topic], published))
        running[name] = Service(module, published)
    yield running


def collector(event_type: type[Event], published: Published) -> Any:
    async def on_output(body: dict[str, Any]) -> None:
        published.events.append(event_type.model_validate(body))

    return on_output


@pytest.fixture(scope="module")
def clip_key(object_store: ObjectStore, tmp_path_factory: pytest.TempPathFactory) -> str:
    require_tools()
    directory = tmp_path_factory.mktemp("handler-media")
    speech = speech_wav(directory)
    path = video_with_audio(speech.path, directory / "speech.mp4", speech.duration_s)
    key = f"media/handlers/{uuid.uuid4().hex}/speech.mp4"
    object_store.upload_file(BUCKET, key, path, "video/mp4")
    return key


def requested(key: str, size: int = 1) -> AnalysisRequested:
    return AnalysisRequested(
        job_id=uuid.uuid4(), bucket=BUCKET, object_key=key, filename=Path(key).name, size_bytes=size
    )


async def run(service: Service, *events: Event) -> None:
    """Start the service as it starts (its lifespan), on an in-memory broker, and hand it the events."""
    module = service.module
    async with module.lifespan(), TestKafkaBroker(module.kit.broker) as broker:
        for event in events:
            await publish(broker, event)


@pytest.fixture(scope="module")
async def pipeline(
    services: dict[str, Service], clip_key: str, object_store: ObjectStore
) -> dict[str, Event]:
    """The clip through the transcriber, the video and the audio encoder: each one's published events."""
    size = object_store.stat(BUCKET, clip_key).size
    request = requested(clip_key, size)
    await run(services["transcriber"], request)
    [transcript] = [
        e for e in services["transcriber"].published.of(request.job_id) if isinstance(e, TranscriptReady)
    ]
    await run(services["video_encoder"], request)
    await run(services["audio_encoder"], request, transcript)
    return {"request": request, "transcript": transcript}


async def test_the_transcriber_announces_its_stage_and_the_measured_length_and_returns_the_transcript(
    services: dict[str, Service], pipeline: dict[str, Event]
) -> None:
    request = pipeline["request"]
    events = services["transcriber"].published.of(request.job_id)
    assert [type(event) for event in events] == [AnalysisProgress, AnalysisProgress, TranscriptReady]
    progress, measured, transcript = events
    assert isinstance(progress, AnalysisProgress) and progress.stage is Stage.TRANSCRIBE
    assert progress.measured_s is None
    # Before the long work: the charge follows the file's real length from here, however the job ends.
    assert isinstance(measured, AnalysisProgress) and isinstance(transcript, TranscriptReady)
    assert measured.measured_s == pytest.approx(transcript.media.duration_s, abs=0.001)
    assert measured.event_id != progress.event_id
    assert isinstance(transcript, TranscriptReady) and transcript.speech_found
    assert transcript.attempt == request.attempt and transcript.utterances
    assert transcript.text.features is not None and transcript.text.features.rows == len(
        transcript.utterances
    )


async def test_the_video_encoder_returns_the_face_track_and_announces_nothing(
    services: dict[str, Service], pipeline: dict[str, Event]
) -> None:
    events = services["video_encoder"].published.of(pipeline["request"].job_id)
    [track] = events  # beside the transcriber, which announces the job's progress
    assert isinstance(track, VideoFeaturesReady) and track.track.samples > 0


async def test_the_audio_encoder_returns_nothing_for_the_request_and_the_voice_for_the_transcript(
    services: dict[str, Service], pipeline: dict[str, Event]
) -> None:
    transcript = pipeline["transcript"]
    assert isinstance(transcript, TranscriptReady)
    events = services["audio_encoder"].published.of(transcript.job_id)
    assert [type(event).__name__ for event in events] == ["AnalysisProgress", "AudioFeaturesReady"]
    progress, voice = events
    assert isinstance(progress, AnalysisProgress) and progress.stage is Stage.ENCODE_AUDIO
    assert isinstance(voice, AudioFeaturesReady) and len(voice.audio.present) == len(transcript.utterances)


async def test_fusion_waits_for_the_three_parts_then_returns_the_result_and_forgets_them(
    services: dict[str, Service], pipeline: dict[str, Event], db_sessions: Any
) -> None:
    job_id = pipeline["request"].job_id
    parts = [
        event
        for name in ("transcriber", "video_encoder", "audio_encoder")
        for event in services[name].published.of(job_id)
        if isinstance(event, TranscriptReady | VideoFeaturesReady | AudioFeaturesReady)
    ]
    fusion = services["fusion"]
    async with db_sessions() as session:
        await job_row(session, job_id)
    await run(fusion, *parts[:2])
    assert fusion.published.of(job_id) == []

    await run(fusion, parts[2])
    events = fusion.published.of(job_id)
    assert [type(event) for event in events] == [AnalysisProgress, AnalysisCompleted]
    completed = events[1]
    assert isinstance(completed, AnalysisCompleted)
    transcript = pipeline["transcript"]
    assert isinstance(transcript, TranscriptReady)
    assert [u.text for u in completed.result.utterances] == [u.text for u in transcript.utterances]
    async with db_sessions() as session:
        assert await session.get(FusionPart, (job_id, 1, "text")) is None  # forgotten once published


async def test_fusion_drops_the_parts_of_an_analysis_that_was_deleted(
    services: dict[str, Service], pipeline: dict[str, Event], db_sessions: Any
) -> None:
    """The parts arrive after their analysis was deleted (no job row): nothing is kept or published."""
    transcript = pipeline["transcript"]
    assert isinstance(transcript, TranscriptReady)
    late = transcript.model_copy(update={"job_id": uuid.uuid4()})
    fusion = services["fusion"]
    await run(fusion, late)
    assert fusion.published.of(late.job_id) == []
    async with db_sessions() as session:
        assert await session.get(FusionPart, (late.job_id, 1, "text")) is None


async def test_a_file_the_stage_cannot_read_ends_as_the_jobs_failure(
    services: dict[str, Service], object_store: ObjectStore, tmp_path: Path
) -> None:
    noise = random_bytes(tmp_path / "noise.mp4")
    key = f"media/handlers/{uuid.uuid4().hex}/noise.mp4"
    object_store.upload_file(BUCKET, key, noise, "video/mp4")
    request = requested(key, noise.stat().st_size)

    await run(services["transcriber"], request)

    events = services["transcriber"].published.of(request.job_id)
    assert [type(event) for event in events] == [AnalysisProgress, AnalysisFailed]
    failed = events[1]
    assert isinstance(failed, AnalysisFailed) and failed.stage is Stage.TRANSCRIBE
    assert failed.code in {FailureCode.NOT_MEDIA, FailureCode.CORRUPT_MEDIA}
