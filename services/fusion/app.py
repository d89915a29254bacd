from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from emotion_contract.events import AudioFeaturesReady, Stage, Topic, TranscriptReady, VideoFeaturesReady
from shared.db.session import create_engine, session_factory
from shared.model.bundle import open_for_service
from shared.model.inference import FusionPredictor
from shared.service import ServiceKit
from shared.storage import ObjectStore

from .handlers import Resources, forget_parts, fuse_job, store_part
from .settings import Settings

settings = Settings()
kit = ServiceKit(settings)
kit.broker.publisher(Topic.ANALYSIS_COMPLETED.value, title="analysis.completed")
resources: list[Resources] = []
PART_TOPICS = (Topic.TRANSCRIPT_READY.value, Topic.FEATURES_VIDEO.value, Topic.FEATURES_AUDIO.value)


@kit.consumer(*PART_TOPICS)
async def on_part(event: TranscriptReady | VideoFeaturesReady | AudioFeaturesReady) -> None:
    parts = await store_part(event, resources[0])
    if parts is not None:
        await kit.run_stage(event, Stage.FUSE, lambda: fuse_job(parts, resources[0]))
        await forget_parts(event, resources[0])


@asynccontextmanager
async def lifespan() -> AsyncIterator[None]:
    bundle = open_for_service(settings, ObjectStore.from_settings(settings), "fusion")
    engine = create_engine(settings.database_url)
    resources.append(
        Resources(
            sessions=session_factory(engine),
            predictor=FusionPredictor(bundle, settings.device),
            bundle_version=bundle.version,
            observe_inference=kit.metrics.observe_inference,
        )
    )
    yield
    resources.clear()
    await engine.dispose()


app = kit.app(lifespan)
