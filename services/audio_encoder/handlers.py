"""transcript.ready → features.audio: per utterance, the voice's calibrated emotions (or an embedding).

Where the transcript brings the voice head's inputs (pooled from the transcription's own Whisper encoder
pass), the head reads them and nothing is downloaded or encoded again. Otherwise the file is fetched and its
states computed, or taken from those computed ahead on analysis.requested (`states_cache_mb`)."""

import asyncio
import logging

from emotion_contract.events import AnalysisRequested, AudioFeaturesReady, TranscriptReady, VoiceFeatures
from shared.downloads import downloaded
from shared.media.container import MediaError
from shared.media.decode import load_audio
from shared.model.inference import AudioFeaturizer
from shared.model.voice import states_nbytes
from shared.service import EncoderResources
from shared.speech_pass import FileStates
from shared.stage_errors import after_work
from shared.stages import encode_audio_file, encode_voice_inputs

from .settings import Settings
from .states_cache import StatesCache

logger = logging.getLogger(__name__)


async def compute_states(
    event: AnalysisRequested,
    resources: EncoderResources[AudioFeaturizer],
    cache: StatesCache,
    settings: Settings,
) -> None:
    """The file's voice states, before its utterances are known; nothing when the file has no usable sound
    (the transcriber fails the job or marks the voice missing) or the voice is not the Whisper head."""
    key = (event.job_id, event.attempt)
    if resources.featurizer.voice is None or not cache.budget_bytes or not cache.wanted(key):
        return  # the default: the transcript brings the voice's inputs from its own encoder pass
    try:
        async with downloaded(
            resources.store,
            event.bucket,
            event.object_key,
            settings.work_dir,
            max_bytes=settings.max_upload_bytes,
        ) as path:
            audio = await asyncio.to_thread(load_audio, path, max_duration_s=settings.max_duration_s)
        if not cache.fits(states_nbytes(len(audio))):
            # They could not be kept until the transcript comes: computing them now would only compete
            # with the transcription for the CPU, and be done again.
            logger.info(
                "job %s: voice states of %.0f s of audio (%d MB) are over the cache budget: computed "
                "after the transcript",
                event.job_id,
                len(audio) / 16_000,
                states_nbytes(len(audio)) // 1_000_000,
            )
            return
        states = await asyncio.to_thread(resources.featurizer.file_states, audio)
    except MediaError as error:
        logger.info("job %s: no voice states computed ahead: %s", event.job_id, error.message)
        return
    except Exception:
        # Only a shortcut: the transcript's handler computes the states itself, so nothing is redelivered.
        logger.warning("job %s: voice states not computed ahead", event.job_id, exc_info=True)
        return
    if states is not None and not cache.put(key, states):
        logger.info("job %s: voice states (%d bytes) not kept", event.job_id, states.nbytes)


async def encode_audio(
    event: TranscriptReady,
    resources: EncoderResources[AudioFeaturizer],
    cache: StatesCache,
    settings: Settings,
) -> AudioFeaturesReady:
    states = cache.take((event.job_id, event.attempt))
    # The transcriber measured the file: whatever fails here fails after work on it.
    with after_work(event.media.duration_s):
        inputs = event.voice_inputs
        if inputs is not None and resources.featurizer.reads_inputs(inputs):
            features = await asyncio.to_thread(
                encode_voice_inputs,
                inputs,
                media=event.media,
                utterances=event.utterances,
                featurizer=resources.featurizer,
                observe_inference=resources.observe_inference,
            )
            return _features_ready(event, resources, features)
        return await _encode_audio(event, resources, states, settings)


async def _encode_audio(
    event: TranscriptReady,
    resources: EncoderResources[AudioFeaturizer],
    states: FileStates | None,
    settings: Settings,
) -> AudioFeaturesReady:
    async with downloaded(
        resources.store,
        event.bucket,
        event.object_key,
        settings.work_dir,
        max_bytes=settings.max_upload_bytes,
    ) as path:
        features = await asyncio.to_thread(
            encode_audio_file,
            path,
            media=event.media,
            utterances=event.utterances,
            featurizer=resources.featurizer,
            speech_found=event.speech_found,
            states=states,
            observe_inference=resources.observe_inference,
        )
    return _features_ready(event, resources, features)


def _features_ready(
    event: TranscriptReady, resources: EncoderResources[AudioFeaturizer], features: VoiceFeatures
) -> AudioFeaturesReady:
    return AudioFeaturesReady(
        job_id=event.job_id,
        attempt=event.attempt,
        bundle_version=resources.bundle_version,
        **dict(features),  # the stage's VoiceFeatures, field by field: the event is that model, and more
    )
