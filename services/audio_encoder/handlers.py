"""transcript.ready → features.audio: per utterance, the voice's embedding from its mel spectrogram."""

import asyncio
from dataclasses import dataclass

from shared.downloads import downloaded
from shared.events import AudioFeaturesReady, TranscriptReady
from shared.model.inference import AudioFeaturizer
from shared.stages import encode_audio_file
from shared.storage import ObjectStore

from .settings import Settings


@dataclass
class Resources:
    settings: Settings
    store: ObjectStore
    featurizer: AudioFeaturizer
    bundle_version: str


async def encode_audio(event: TranscriptReady, resources: Resources) -> AudioFeaturesReady:
    async with downloaded(
        resources.store, event.bucket, event.object_key, resources.settings.work_dir
    ) as path:
        features = await asyncio.to_thread(
            encode_audio_file,
            path,
            media=event.media,
            utterances=event.utterances,
            featurizer=resources.featurizer,
        )
    return AudioFeaturesReady(
        job_id=event.job_id, attempt=event.attempt, bundle_version=resources.bundle_version, audio=features
    )
