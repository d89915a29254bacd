"""transcript.ready → features.video: per utterance, the clip's embedding and whether a face was seen."""

import asyncio

from shared.downloads import downloaded
from shared.events import TranscriptReady, VideoFeaturesReady
from shared.model.inference import VideoFeaturizer
from shared.service import EncoderResources
from shared.stages import encode_video_file

from .settings import Settings


async def encode_video(
    event: TranscriptReady, resources: EncoderResources[VideoFeaturizer], settings: Settings
) -> VideoFeaturesReady:
    async with downloaded(resources.store, event.bucket, event.object_key, settings.work_dir) as path:
        output = await asyncio.to_thread(
            encode_video_file,
            path,
            media=event.media,
            utterances=event.utterances,
            featurizer=resources.featurizer,
            observe_inference=resources.observe_inference,
        )
    return VideoFeaturesReady(
        job_id=event.job_id,
        attempt=event.attempt,
        bundle_version=resources.bundle_version,
        **output.model_dump(),
    )
