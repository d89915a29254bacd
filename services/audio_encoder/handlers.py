"""transcript.ready → features.audio: per utterance, the voice's calibrated emotions (or an embedding)."""

import asyncio

from shared.downloads import downloaded
from shared.events import AudioFeaturesReady, TranscriptReady
from shared.model.inference import AudioFeaturizer
from shared.service import EncoderResources
from shared.stages import encode_audio_file

from .settings import Settings


async def encode_audio(
    event: TranscriptReady, resources: EncoderResources[AudioFeaturizer], settings: Settings
) -> AudioFeaturesReady:
    async with downloaded(resources.store, event.bucket, event.object_key, settings.work_dir) as path:
        features = await asyncio.to_thread(
            encode_audio_file,
            path,
            media=event.media,
            utterances=event.utterances,
            featurizer=resources.featurizer,
            speech_found=event.speech_found,
            observe_inference=resources.observe_inference,
        )
    return AudioFeaturesReady(
        job_id=event.job_id,
        attempt=event.attempt,
        bundle_version=resources.bundle_version,
        audio=features.audio,
        voice_emotions=features.voice_emotions,
    )
