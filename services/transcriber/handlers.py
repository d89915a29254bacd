"""analysis.requested → transcript.ready: utterances from speech, and their text embeddings."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from emotion_contract.events import AnalysisRequested, TranscriptReady
from shared.downloads import downloaded
from shared.model.inference import TextFeaturizer
from shared.model.speakers import Speakers
from shared.service import EncoderResources
from shared.stages import check_media, transcribe_file
from shared.transcription import Transcriber

from .settings import Settings


@dataclass
class Models:
    transcriber: Transcriber
    text: TextFeaturizer
    speakers: Speakers | None


async def transcribe(
    event: AnalysisRequested,
    resources: EncoderResources[Models],
    settings: Settings,
    measured: Callable[[float], Awaitable[None]],
) -> TranscriptReady:
    """The transcript; `measured` hears the file's length as soon as it is checked, before the long work
    (the job is charged for it even if that work never ends)."""
    models = resources.featurizer
    async with downloaded(
        resources.store,
        event.bucket,
        event.object_key,
        settings.work_dir,
        max_bytes=settings.max_upload_bytes,
        expected_bytes=event.size_bytes,
    ) as path:
        media = await asyncio.to_thread(check_media, path, max_duration_s=settings.max_duration_s)
        await measured(media.duration_s)
        output = await asyncio.to_thread(
            transcribe_file,
            path,
            transcriber=models.transcriber,
            text=models.text,
            max_duration_s=settings.max_duration_s,
            observe_inference=resources.observe_inference,
            media=media,
            speakers=models.speakers,
            people=event.speakers,
            voice_inputs=settings.voice_inputs,
        )
    return TranscriptReady(
        job_id=event.job_id,
        attempt=event.attempt,
        bucket=event.bucket,
        object_key=event.object_key,
        bundle_version=resources.bundle_version,
        **dict(output),  # the stage's Transcript, field by field: the event is that model, and more
    )
