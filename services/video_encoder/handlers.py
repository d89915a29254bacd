"""transcript.ready → features.video: per utterance, the clip's embedding and whether a face was seen."""

import asyncio
from dataclasses import dataclass

from shared.downloads import downloaded
from shared.events import TranscriptReady, VideoFeaturesReady
from shared.model.inference import VideoFeaturizer
from shared.stages import encode_video_file
from shared.storage import ObjectStore

from .settings import Settings


@dataclass
class Resources:
    settings: Settings
    store: ObjectStore
    featurizer: VideoFeaturizer
    bundle_version: str


async def encode_video(event: TranscriptReady, resources: Resources) -> VideoFeaturesReady:
    async with downloaded(
        resources.store, event.bucket, event.object_key, resources.settings.work_dir
    ) as path:
        output = await asyncio.to_thread(
            encode_video_file,
            path,
            media=event.media,
            utterances=event.utterances,
            featurizer=resources.featurizer,
        )
    return VideoFeaturesReady(
        job_id=event.job_id,
        attempt=event.attempt,
        bundle_version=resources.bundle_version,
        **output.model_dump(),
    )
