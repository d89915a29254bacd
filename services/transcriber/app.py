from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from faststream import Context

from emotion_contract.events import AnalysisRequested, Event, Stage, Topic
from shared.assets import whisper_model_dir
from shared.model.bundle import open_for_service
from shared.model.inference import TextFeaturizer
from shared.model.speaker_encoder import load_speaker_encoder
from shared.model.speakers import Speakers
from shared.service import EncoderResources, ServiceKit
from shared.storage import ObjectStore
from shared.transcription import Transcriber, WordsPolicy

from .handlers import Models, transcribe
from .settings import Settings

settings = Settings()
kit = ServiceKit(settings, Stage.TRANSCRIBE)
kit.broker.publisher(Topic.TRANSCRIPT_READY.value, title="transcript.ready")
Resources = Annotated[EncoderResources[Models], Context("resources")]


@kit.consumer(Topic.ANALYSIS_REQUESTED.value)
async def on_analysis_requested(event: AnalysisRequested, resources: Resources) -> Event:
    async def measured(seconds: float) -> None:
        await kit.report_measured(event, Stage.TRANSCRIBE, seconds)

    return await kit.run_stage(
        event, Stage.TRANSCRIBE, lambda: transcribe(event, resources, settings, measured)
    )


@asynccontextmanager
async def lifespan() -> AsyncIterator[None]:
    store = ObjectStore.from_settings(settings)
    bundle = open_for_service(settings, store, "text")
    whisper = whisper_model_dir(settings.whisper_model, Path(settings.whisper_cache_dir))
    models = Models(
        transcriber=Transcriber(
            whisper,
            beam_size=settings.whisper_beam_size,
            device=settings.device,
            cpu_threads=settings.whisper_threads,
            words=WordsPolicy(
                translate=settings.translate_words,
                min_language_probability=settings.min_language_probability,
            ),
        ),
        text=TextFeaturizer(bundle, settings.device),
        speakers=Speakers(load_speaker_encoder()) if settings.diarize else None,
    )
    resources = kit.encoder_resources(store, models, bundle.version)
    async with kit.provide("resources", resources):
        yield


app = kit.app(lifespan)
