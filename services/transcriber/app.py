from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import torch
from prometheus_client import CollectorRegistry

from shared.assets import whisper_model_dir
from shared.events import AnalysisRequested, Stage, Topic
from shared.metrics import StageMetrics
from shared.model.bundle import open_bundle
from shared.model.inference import TextFeaturizer
from shared.service import consumer, make_app, make_broker, run_stage
from shared.storage import ObjectStore
from shared.transcription import Transcriber

from .handlers import Resources, transcribe
from .settings import Settings

settings = Settings()
registry = CollectorRegistry()
metrics = StageMetrics(registry)
broker = make_broker(settings, registry)
broker.publisher(Topic.TRANSCRIPT_READY.value, title="transcript.ready")
resources: list[Resources] = []


@consumer(broker, settings, Topic.ANALYSIS_REQUESTED.value)
async def on_analysis_requested(event: AnalysisRequested) -> None:
    await run_stage(
        broker,
        event,
        stage=Stage.TRANSCRIBE,
        service=settings.service_name,
        metrics=metrics,
        work=lambda: transcribe(event, resources[0]),
    )


@asynccontextmanager
async def lifespan() -> AsyncIterator[None]:
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    store = ObjectStore.from_settings(settings)
    bundle = open_bundle(
        settings.bundle_uri, components=("text",), store=store, cache_dir=Path(settings.bundle_cache_dir)
    )
    model_dir = whisper_model_dir(settings.whisper_model, Path(settings.whisper_cache_dir))
    resources.append(
        Resources(
            settings=settings,
            store=store,
            transcriber=Transcriber(model_dir, beam_size=settings.whisper_beam_size),
            text=TextFeaturizer(bundle, settings.device),
            bundle_version=bundle.version,
        )
    )
    yield
    resources.clear()


app = make_app(broker, registry, lifespan=lifespan)
