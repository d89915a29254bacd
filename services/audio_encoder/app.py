from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from shared.events import Stage, Topic, TranscriptReady
from shared.model.bundle import open_for_service
from shared.model.inference import AudioFeaturizer
from shared.service import EncoderResources, ServiceKit
from shared.storage import ObjectStore

from .handlers import encode_audio
from .settings import Settings

settings = Settings()
kit = ServiceKit(settings)
kit.broker.publisher(Topic.FEATURES_AUDIO.value, title="features.audio")
resources: list[EncoderResources[AudioFeaturizer]] = []


@kit.consumer(Topic.TRANSCRIPT_READY.value)
async def on_transcript_ready(event: TranscriptReady) -> None:
    await kit.run_stage(event, Stage.ENCODE_AUDIO, lambda: encode_audio(event, resources[0], settings))


@asynccontextmanager
async def lifespan() -> AsyncIterator[None]:
    store = ObjectStore.from_settings(settings)
    bundle = open_for_service(settings, store, "audio")
    featurizer = AudioFeaturizer(bundle, settings.device, run_untrained=settings.run_untrained)
    resources.append(
        EncoderResources(
            store=store,
            featurizer=featurizer,
            bundle_version=bundle.version,
            observe_inference=kit.metrics.observe_inference,
        )
    )
    yield
    resources.clear()


app = kit.app(lifespan)
