from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from faststream import Context

from emotion_contract.events import (
    Event,
    Stage,
    Topic,
)
from shared.db.session import create_engine, session_factory
from shared.model.bundle import open_for_service
from shared.model.inference import FusionPredictor
from shared.service import ServiceKit
from shared.storage import ObjectStore

from .handlers import PartEvent, Resources, forget_parts, fuse_job, store_part
from .settings import Settings

settings = Settings()
kit = ServiceKit(settings, Stage.FUSE)
kit.broker.publisher(Topic.ANALYSIS_COMPLETED.value, title="analysis.completed")
PART_TOPICS = (Topic.TRANSCRIPT_READY.value, Topic.FEATURES_VIDEO.value, Topic.FEATURES_AUDIO.value)
ResourcesDep = Annotated[Resources, Context("resources")]


@kit.consumer(*PART_TOPICS, after_publish=forget_parts)
async def on_part(event: PartEvent, resources: ResourcesDep) -> Event | None:
    """The result (or the failure) once the three parts are in; their rows go once it is published."""
    parts = await store_part(event, resources)
    if parts is None:
        return None  # the other parts are still to come
    return await kit.run_stage(event, Stage.FUSE, lambda: fuse_job(parts, resources))


@asynccontextmanager
async def lifespan() -> AsyncIterator[None]:
    bundle = open_for_service(settings, ObjectStore.from_settings(settings), "fusion")
    engine = create_engine(settings.database_url)
    resources = Resources(
        sessions=session_factory(engine),
        predictor=FusionPredictor(bundle, settings.device),
        bundle_version=bundle.version,
        observe_inference=kit.metrics.observe_inference,
    )
    try:
        async with kit.provide("resources", resources):
            yield
    finally:
        await engine.dispose()


app = kit.app(lifespan)
