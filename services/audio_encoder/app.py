from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import torch
from prometheus_client import CollectorRegistry

from shared.events import Stage, Topic, TranscriptReady
from shared.metrics import StageMetrics
from shared.model.bundle import open_bundle
from shared.model.inference import AudioFeaturizer
from shared.service import consumer, make_app, make_broker, run_stage
from shared.storage import ObjectStore

from .handlers import Resources, encode_audio
from .settings import Settings

settings = Settings()
registry = CollectorRegistry()
metrics = StageMetrics(registry)
broker = make_broker(settings, registry)
broker.publisher(Topic.FEATURES_AUDIO.value, title="features.audio")
resources: list[Resources] = []


@consumer(broker, settings, Topic.TRANSCRIPT_READY.value)
async def on_transcript_ready(event: TranscriptReady) -> None:
    await run_stage(
        broker,
        event,
        stage=Stage.ENCODE_AUDIO,
        service=settings.service_name,
        metrics=metrics,
        work=lambda: encode_audio(event, resources[0]),
    )


@asynccontextmanager
async def lifespan() -> AsyncIterator[None]:
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    store = ObjectStore.from_settings(settings)
    bundle = open_bundle(
        settings.bundle_uri, components=("audio",), store=store, cache_dir=Path(settings.bundle_cache_dir)
    )
    resources.append(
        Resources(
            settings=settings,
            store=store,
            featurizer=AudioFeaturizer(bundle, settings.device, run_untrained=settings.run_untrained),
            bundle_version=bundle.version,
        )
    )
    yield
    resources.clear()


app = make_app(broker, registry, lifespan=lifespan)
