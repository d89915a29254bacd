"""analysis.requested → features.video: the face over the whole video, beside the transcription."""

import asyncio

from emotion_contract.events import AnalysisRequested, VideoFeaturesReady
from shared.downloads import downloaded
from shared.model.inference import VideoFeaturizer
from shared.service import EncoderResources
from shared.stages import track_video_file

from .settings import Settings


async def encode_video(
    event: AnalysisRequested, resources: EncoderResources[VideoFeaturizer], settings: Settings
) -> VideoFeaturesReady:
    async with downloaded(
        resources.store,
        event.bucket,
        event.object_key,
        settings.work_dir,
        max_bytes=settings.max_upload_bytes,
        expected_bytes=event.size_bytes,
    ) as path:
        track = await asyncio.to_thread(
            track_video_file,
            path,
            featurizer=resources.featurizer,
            max_duration_s=settings.max_duration_s,
            interval_s=settings.face_interval_s,
            observe_inference=resources.observe_inference,
        )
    return VideoFeaturesReady(
        job_id=event.job_id, attempt=event.attempt, bundle_version=resources.bundle_version, track=track
    )
