from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from faststream import Context

from emotion_contract.events import AnalysisRequested, Event, Stage, Topic, TranscriptReady
from shared.model.bundle import open_for_service
from shared.model.inference import AudioFeaturizer
from shared.service import EncoderResources, ServiceKit
from shared.storage import ObjectStore

from .handlers import compute_states, encode_audio
from .settings import Settings
from .states_cache import StatesCache

settings = Settings()
kit = ServiceKit(settings, Stage.ENCODE_AUDIO)
kit.broker.publisher(Topic.FEATURES_AUDIO.value, title="features.audio")
Resources = Annotated[EncoderResources[AudioFeaturizer], Context("resources")]
StatesCacheDep = Annotated[StatesCache, Context("states_cache")]


# One consumer for both topics, so a job's two events (same key, same partition number) meet here.
@kit.consumer(Topic.ANALYSIS_REQUESTED.value, Topic.TRANSCRIPT_READY.value)
async def on_event(
    event: AnalysisRequested | TranscriptReady, resources: Resources, cache: StatesCacheDep
) -> Event | None:
    if isinstance(event, AnalysisRequested):
        await compute_states(event, resources, cache, settings)  # only ahead of the transcript: no event
        return None
    return await kit.run_stage(
        event, Stage.ENCODE_AUDIO, lambda: encode_audio(event, resources, cache, settings)
    )


@asynccontextmanager
async def lifespan() -> AsyncIterator[None]:
    store = ObjectStore.from_settings(settings)
    bundle = open_for_service(settings, store, "audio")
    featurizer = AudioFeaturizer(
        bundle, settings.device, run_untrained=settings.run_untrained, cpu_threads=settings.whisper_threads
    )
    resources = kit.encoder_resources(store, featurizer, bundle.version)
    cache = StatesCache(settings.states_cache_mb * 1024 * 1024)
    async with kit.provide("resources", resources), kit.provide("states_cache", cache):
        yield


app = kit.app(lifespan)
