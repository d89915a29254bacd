"""transcript.ready + features.video + features.audio → analysis.completed, in whatever order they come (the
video's usually first: it starts with the transcription). The face track is pooled per utterance here.

Each modality's event is stored in PostgreSQL as it arrives (fusion_part); whichever event completes the
set runs the fusion, and the parts are deleted once its result is out. Two replicas that both see the set
complete publish the same result with the same event id, which the gateway takes once.
"""

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.events import AnalysisCompleted, AudioFeaturesReady, TranscriptReady, VideoFeaturesReady
from emotion_contract.labels import Modality
from shared.metrics import InferenceObserver
from shared.model.inference import FusionPredictor
from shared.stage_errors import after_work
from shared.stages import fuse

from .parts import delete_parts, get_parts, put_part

logger = logging.getLogger(__name__)
PartEvent = TranscriptReady | VideoFeaturesReady | AudioFeaturesReady
PART_OF: dict[type[PartEvent], Modality] = {
    TranscriptReady: Modality.TEXT,
    VideoFeaturesReady: Modality.VIDEO,
    AudioFeaturesReady: Modality.AUDIO,
}


@dataclass
class Resources:
    sessions: async_sessionmaker[AsyncSession]
    predictor: FusionPredictor
    bundle_version: str
    observe_inference: InferenceObserver


async def store_part(event: PartEvent, resources: Resources) -> dict[Modality, dict[str, Any]] | None:
    """Record this modality's event; the full set of parts once all three are in, else None."""
    async with resources.sessions() as session:
        stored = await put_part(
            session=session,
            job_id=event.job_id,
            attempt=event.attempt,
            part=PART_OF[type(event)],
            payload=event.model_dump(mode="json"),
        )
        if not stored:
            logger.info("job %s: its analysis was deleted; its %s part is dropped", event.job_id, event.TOPIC)
            return None
        parts = await get_parts(session=session, job_id=event.job_id, attempt=event.attempt)
    return parts if set(parts) == set(Modality) else None


async def forget_parts(event: PartEvent, resources: Resources) -> None:
    """Drop the job's stored parts once its result (or failure) is published: the transcript is the user's
    data and must not outlive its use. A part redelivered later is stored again, and goes with the job."""
    async with resources.sessions() as session:
        await delete_parts(session=session, job_id=event.job_id)


def fuse_parts(parts: dict[Modality, dict[str, Any]], resources: Resources) -> AnalysisCompleted:
    transcript = TranscriptReady.model_validate(parts[Modality.TEXT])
    with after_work(transcript.media.duration_s):  # every stage before this one worked on the file
        video = VideoFeaturesReady.model_validate(parts[Modality.VIDEO])
        audio = AudioFeaturesReady.model_validate(parts[Modality.AUDIO])
        result = fuse(
            transcript=transcript,
            video_track=video.track,
            audio=audio,
            predictor=resources.predictor,
            bundle_version=resources.bundle_version,
            observe_inference=resources.observe_inference,
        )
    return AnalysisCompleted(job_id=transcript.job_id, attempt=transcript.attempt, result=result)


async def fuse_job(parts: dict[Modality, dict[str, Any]], resources: Resources) -> AnalysisCompleted:
    return await asyncio.to_thread(fuse_parts, parts, resources)
