from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from faststream import Context

from emotion_contract.events import AnalysisRequested, Event, Stage, Topic
from shared.model.bundle import open_for_service
from shared.model.inference import VideoFeaturizer
from shared.service import EncoderResources, ServiceKit
from shared.storage import ObjectStore

from .handlers import encode_video
from .settings import Settings

settings = Settings()
kit = ServiceKit(settings, Stage.ENCODE_VIDEO)
kit.broker.publisher(Topic.FEATURES_VIDEO.value, title="features.video")
Resources = Annotated[EncoderResources[VideoFeaturizer], Context("resources")]


@kit.consumer(Topic.ANALYSIS_REQUESTED.value)
async def on_analysis_requested(event: AnalysisRequested, resources: Resources) -> Event:
    # Beside the transcriber, which announces the job's progress: a second voice would move the job's
    # stage back and forth.
    return await kit.run_stage(
        event, Stage.ENCODE_VIDEO, lambda: encode_video(event, resources, settings), announce=False
    )


@asynccontextmanager
async def lifespan() -> AsyncIterator[None]:
    store = ObjectStore.from_settings(settings)
    bundle = open_for_service(settings, store, "video", "face")
    featurizer = VideoFeaturizer(bundle, settings.device, run_untrained=settings.run_untrained)
    resources = kit.encoder_resources(store, featurizer, bundle.version)
    async with kit.provide("resources", resources):
        yield


app = kit.app(lifespan)
