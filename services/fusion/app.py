from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry

from shared.db.session import create_engine, session_factory
from shared.events import AudioFeaturesReady, Stage, Topic, TranscriptReady, VideoFeaturesReady
from shared.metrics import StageMetrics
from shared.model.bundle import open_bundle
from shared.model.inference import FusionPredictor
from shared.service import consumer, make_app, make_broker, run_stage
from shared.storage import ObjectStore

from .handlers import Resources, fuse_job, store_part
from .settings import Settings

settings = Settings()
registry = CollectorRegistry()
metrics = StageMetrics(registry)
broker = make_broker(settings, registry)
broker.publisher(Topic.ANALYSIS_COMPLETED.value, title="analysis.completed")
resources: list[Resources] = []


PART_TOPICS = (Topic.TRANSCRIPT_READY.value, Topic.FEATURES_VIDEO.value, Topic.FEATURES_AUDIO.value)


@consumer(broker, settings, *PART_TOPICS)
async def on_part(event: TranscriptReady | VideoFeaturesReady | AudioFeaturesReady) -> None:
    parts = await store_part(event, resources[0])
    if parts is not None:
        await run_stage(
            broker,
            event,
            stage=Stage.FUSE,
            service=settings.service_name,
            metrics=metrics,
            work=lambda: fuse_job(parts, resources[0]),
        )


@asynccontextmanager
async def lifespan() -> AsyncIterator[None]:
    store = ObjectStore.from_settings(settings)
    bundle = open_bundle(
        settings.bundle_uri, components=("fusion",), store=store, cache_dir=Path(settings.bundle_cache_dir)
    )
    engine = create_engine(settings.database_url)
    resources.append(
        Resources(
            settings=settings,
            sessions=session_factory(engine),
            predictor=FusionPredictor(bundle, settings.device),
            bundle_version=bundle.version,
        )
    )
    yield
    resources.clear()
    await engine.dispose()


app = make_app(broker, registry, lifespan=lifespan)
