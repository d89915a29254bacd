"""The pipeline's stages as plain functions: the services wrap each in a Kafka handler, and
`emotion-analyzer analyze` calls them in one process. Neither knows about the other.

    (transcribe_file → encode_audio_file) beside track_video_file, then fuse

The picture needs no utterances: it is followed over the whole file at a fixed rate while the speech is
transcribed, and fusion pools it per utterance.
"""

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import numpy as np

from emotion_contract.errors import FailureCode
from emotion_contract.events import (
    MediaInfo,
    ModalityFeatures,
    Span,
    Transcript,
    VideoTrack,
    VoiceFeatures,
    VoiceInputs,
)
from emotion_contract.labels import Modality, WordsSource
from emotion_contract.results import (
    AnalysisResult,
    MissingModality,
    ModalityPrediction,
    UtteranceResult,
    emotion_scores,
    sentiment_scores,
    summarise_speakers,
)
from shared.feature_matrix import to_matrix
from shared.media.container import MediaError
from shared.media.decode import load_audio, probe
from shared.media.frames import sample_span_frames, sample_stills
from shared.metrics import InferenceModality, InferenceObserver
from shared.model.face_detection import FaceTracker, frame_face
from shared.model.face_quality import face_quality
from shared.model.inference import (
    NO_AUDIO,
    NO_SPEECH,
    UNTRAINED,
    AudioFeaturizer,
    FusionPredictor,
    TextFeaturizer,
    VideoFeaturizer,
    pool_video_track,
)
from shared.model.speakers import Speakers
from shared.model.voice import MARGINS_S, POOLED_DIM, pool_span
from shared.speech_pass import FileStates
from shared.stage_errors import after_work
from shared.transcription import NO_SPEECH_FOUND, Transcriber, assign_translations

SEGMENT_S = 2.0
"""Without speech a video is cut into windows of this length, so the face's course is seen over time."""
FACE_INTERVAL_S = 0.5
"""The face is looked at twice a second, about six times in a typical utterance: on the kit's real clips
(`training.face_video`, by actor folds) the face's clip-level weighted F1 was 0.31 at once a second, 0.36
at twice and 0.33 at four times; a second's pictures miss short expressions. Once a second, the 65 s
bench video took 1.09x (in-process) and 1.23x (stack) its transcription alone on 2 cores; at twice a second
1.26-1.36x and 1.34-1.46x."""


@contextmanager
def _inference(
    observe: InferenceObserver | None, modality: InferenceModality, utterances: int
) -> Iterator[None]:
    """Reports the block's seconds to `observe` when it returns (a failed inference is not a timing)."""
    started = time.perf_counter()
    yield
    if observe is not None:
        observe(modality, time.perf_counter() - started, utterances)


def check_media(path: Path, *, max_duration_s: float) -> MediaInfo:
    """Probe the file and refuse what the pipeline cannot analyse, with a stable code and a clear reason."""
    media = probe(path, max_duration_s=max_duration_s)
    if not media.has_audio and not media.has_video:
        raise MediaError(FailureCode.NO_AUDIO_TRACK, "the file has neither an audio track nor a picture")
    return media


def fixed_segments(duration_s: float, length_s: float = SEGMENT_S) -> list[Span]:
    """[0, d) in windows of `length_s`; a remainder under half a window joins the last one."""
    count = max(1, int(duration_s / length_s + 0.5))  # half a window or more is a window of its own
    bounds = [min(i * length_s, duration_s) for i in range(count)] + [duration_s]
    return [
        Span(index=i, start=round(bounds[i], 3), end=round(bounds[i + 1], 3), text="") for i in range(count)
    ]


def _no_speech_segments(media: MediaInfo) -> list[Span]:
    """A picture is followed in fixed windows; sound alone without speech is one segment."""
    if media.has_video:
        return fixed_segments(media.duration_s)
    return [Span(index=0, start=0.0, end=media.duration_s, text="")]


def transcribe_file(
    path: Path,
    *,
    transcriber: Transcriber,
    text: TextFeaturizer,
    max_duration_s: float,
    observe_inference: InferenceObserver | None = None,
    media: MediaInfo | None = None,
    speakers: Speakers | None = None,
    people: int | None = None,
    voice_inputs: bool = False,
) -> Transcript:
    """The file's utterances, language and words. `media`: the file's `check_media`, where the caller made
    it already. `speakers`: who speaks each utterance (None: not told apart), with `people` the number of
    them when the request knows it. `voice_inputs`: also the voice head's inputs per utterance, pooled from
    this transcription's encoder states (for an audio encoder elsewhere: `encode_voice_inputs`). Whatever
    fails once the file is checked fails after work."""
    transcript, states = transcribe_file_with_states(
        path,
        transcriber=transcriber,
        text=text,
        max_duration_s=max_duration_s,
        observe_inference=observe_inference,
        media=media,
        speakers=speakers,
        people=people,
        keep_states=voice_inputs,
    )
    if states is None or not transcript.speech_found or not voice_inputs_fit(len(transcript.utterances)):
        return transcript
    pooled = pool_voice_inputs(states, transcript.utterances, transcriber.fingerprint)
    return transcript.model_copy(update={"voice_inputs": pooled})


# 12 KB an utterance: past this (about 1,400 utterances, an hour or more of dense talk) the transcript
# carries no voice inputs and the audio encoder reads the file itself, so that the event stays far below
# the claim check's largest body (`shared.claim_check.MAX_BODY_BYTES`).
VOICE_INPUTS_MAX_BYTES: Final = 16 * 1024 * 1024


def voice_inputs_fit(n_utterances: int) -> bool:
    """Whether the voice inputs of that many utterances travel with the transcript."""
    return n_utterances * len(MARGINS_S) * POOLED_DIM * 4 <= VOICE_INPUTS_MAX_BYTES


def pool_voice_inputs(states: FileStates, utterances: Sequence[Span], whisper: str) -> VoiceInputs:
    """What the voice head reads of each utterance, at the widenings the shipped heads pool (`MARGINS_S`)."""
    rows = [pool_span(states, u.start, u.end, MARGINS_S).reshape(-1) for u in utterances]
    return VoiceInputs(whisper=whisper, margins_s=list(MARGINS_S), pooled=to_matrix(np.stack(rows)))


def transcribe_file_with_states(
    path: Path,
    *,
    transcriber: Transcriber,
    text: TextFeaturizer,
    max_duration_s: float,
    observe_inference: InferenceObserver | None = None,
    media: MediaInfo | None = None,
    speakers: Speakers | None = None,
    people: int | None = None,
    keep_states: bool = True,
) -> tuple[Transcript, FileStates | None]:
    """`transcribe_file`, and the Whisper encoder states of the speech that the transcription computed (for
    a voice that reads that model's states: `encode_audio_file(states=...)`); None without speech."""
    media = media or check_media(path, max_duration_s=max_duration_s)
    with after_work(media.duration_s):
        return _transcribe_checked(
            path, media, transcriber, text, observe_inference, speakers, people, keep_states
        )


def _transcribe_checked(
    path: Path,
    media: MediaInfo,
    transcriber: Transcriber,
    text: TextFeaturizer,
    observe_inference: InferenceObserver | None,
    speakers: Speakers | None,
    people: int | None,
    keep_states: bool,
) -> tuple[Transcript, FileStates | None]:
    utterances: list[Span] = []
    language, probability, words = None, None, NO_SPEECH_FOUND
    states: FileStates | None = None
    if media.has_audio:
        audio = load_audio(path)
        transcript, states = transcriber.transcribe_with_states(audio, keep_states=keep_states)
        utterances = [span.model_copy(update={"index": i}) for i, span in enumerate(transcript.spans)]
        language, probability, words = transcript.language, transcript.language_probability, transcript.words
        if speakers is not None and utterances:
            with _inference(observe_inference, "speakers", len(utterances)):
                utterances = speakers.label(audio, utterances, transcript.span_words, speakers=people)
            if len(utterances) != len(transcript.spans) and transcript.translated:  # cut at a change of voice
                english = assign_translations(utterances, transcript.translated)
                utterances = [
                    u.model_copy(update={"translation": e}) for u, e in zip(utterances, english, strict=True)
                ]
    speech_found = bool(utterances)
    if not speech_found:
        utterances = _no_speech_segments(media)
    with _inference(observe_inference, "text", len(utterances)):
        features = text.encode(
            [readable_words(u, words.source) for u in utterances], [u.speaker for u in utterances]
        )
    if not media.has_audio:
        features = features.model_copy(update={"missing_reason": NO_AUDIO})
    elif speech_found and not any(features.present) and words.missing_reason is not None:
        features = features.model_copy(update={"missing_reason": words.missing_reason})
    return Transcript(
        media=media,
        language=language,
        language_probability=None if probability is None else round(probability, 4),
        words=words.source,
        utterances=utterances,
        speech_found=speech_found,
        text=features,
    ), states


def readable_words(utterance: Span, source: WordsSource) -> str:
    """What the (English) words model reads of an utterance; empty where it reads nothing."""
    if source is WordsSource.TRANSCRIPT:
        return utterance.text
    if source is WordsSource.TRANSLATION:
        return utterance.translation or ""
    return ""


def _spans(utterances: Sequence[Span]) -> list[tuple[float, float]]:
    return [(u.start, u.end) for u in utterances]


def track_video_file(
    path: Path,
    *,
    featurizer: VideoFeaturizer,
    max_duration_s: float,
    interval_s: float = FACE_INTERVAL_S,
    observe_inference: InferenceObserver | None = None,
) -> VideoTrack:
    """The picture of the whole file: the largest face followed at `interval_s` and its expression, and
    R3D-18 clip embeddings over fixed windows once that branch is trained. Starts from the file alone."""

    def missing(reason: str, trained: bool = True, samples: int = 0) -> VideoTrack:
        return VideoTrack(interval_s=interval_s, samples=samples, missing_reason=reason, trained=trained)

    try:
        media = check_media(path, max_duration_s=max_duration_s)
    except MediaError as error:
        # The transcriber judges the same file and fails the job with this reason; here it is only missing.
        return missing(f"the picture could not be read: {error.message}")
    if not media.has_video:
        return missing("the file has no video stream")
    if not featurizer.runs:
        return missing(UNTRAINED.format(Modality.VIDEO.value), trained=False)
    with after_work(media.duration_s):
        return _track_checked(path, media, featurizer, interval_s, observe_inference)


def _track_checked(
    path: Path,
    media: MediaInfo,
    featurizer: VideoFeaturizer,
    interval_s: float,
    observe_inference: InferenceObserver | None,
) -> VideoTrack:
    def missing(reason: str, samples: int = 0) -> VideoTrack:
        return VideoTrack(interval_s=interval_s, samples=samples, missing_reason=reason)

    tracker = FaceTracker()
    samples, times, crops, quality = 0, [], [], []
    for time_s, grey in sample_stills(path, interval_s=interval_s):
        samples += 1
        if (box := tracker.find(grey, time_s)) is not None:
            times.append(round(time_s, 3))
            crops.append(frame_face(grey, box))
            quality.append(round(face_quality(crops[-1], max(box.width, box.height)), 3))
    if not samples:
        return missing("no video frames could be decoded")
    if not crops:
        return missing("no face was found in the video", samples=samples)
    emotions = None
    if featurizer.face is not None:
        with _inference(observe_inference, "video", len(crops)):
            emotions = to_matrix(featurizer.face_emotions(np.stack(crops)))
    windows: list[tuple[float, float]] = []
    clip_features = None
    if featurizer.model is not None:
        config = featurizer.config
        windows = _spans(fixed_segments(media.duration_s))
        sampled = sample_span_frames(
            path, windows, n_frames=config.video_frames, size=config.frame_size, stills_per_span=0
        )
        clip_features = to_matrix(
            featurizer.clip_embeddings([frames.clip if frames is not None else None for frames in sampled])
        )
    return VideoTrack(
        interval_s=interval_s,
        samples=samples,
        face_times=times,
        face_emotions=emotions,
        face_quality=quality,
        windows=windows,
        clip_features=clip_features,
        trained=featurizer.face is not None or featurizer.trained,
    )


def encode_audio_file(
    path: Path,
    *,
    media: MediaInfo,
    utterances: Sequence[Span],
    featurizer: AudioFeaturizer,
    speech_found: bool,
    states: FileStates | None = None,
    observe_inference: InferenceObserver | None = None,
) -> VoiceFeatures:
    """The voice of each utterance; without speech there is no voice to read (noise, music or silence).
    `states`: the featurizer's `file_states` of this file, where they were computed beforehand."""
    if media.has_audio and not speech_found:
        return VoiceFeatures(
            audio=ModalityFeatures(features=None, present=[False] * len(utterances), missing_reason=NO_SPEECH)
        )
    audio = load_audio(path) if media.has_audio else None
    with _inference(observe_inference, "audio", len(utterances)):
        return featurizer.encode(audio, _spans(utterances), states)


def encode_voice_inputs(
    inputs: VoiceInputs,
    *,
    media: MediaInfo,
    utterances: Sequence[Span],
    featurizer: AudioFeaturizer,
    observe_inference: InferenceObserver | None = None,
) -> VoiceFeatures:
    """The voice of each utterance from the inputs the transcription pooled (`featurizer.reads_inputs`)."""
    with _inference(observe_inference, "audio", len(utterances)):
        return featurizer.encode_inputs(inputs, media, _spans(utterances))


UNTRANSLATED: Final = "Whisper's English translation left this utterance out"


def _prediction(
    outputs: dict[str, tuple[np.ndarray, np.ndarray]],
    modality: Modality,
    row: int,
    features: ModalityFeatures,
    reason: str | None = None,
    quality: float | None = None,
) -> ModalityPrediction:
    if modality.value not in outputs or not features.present[row]:
        reason = reason or features.missing_reason or f"no {modality.value} for this utterance"
        return ModalityPrediction(available=False, reason=reason)
    emotion, sentiment = outputs[modality.value]
    return ModalityPrediction(
        available=True,
        emotions=emotion_scores(emotion[row]),
        sentiments=sentiment_scores(sentiment[row]),
        quality=quality,
    )


def fuse(
    *,
    transcript: Transcript,
    video_track: VideoTrack,
    audio: VoiceFeatures,
    predictor: FusionPredictor,
    bundle_version: str,
    observe_inference: InferenceObserver | None = None,
) -> AnalysisResult:
    utterances = transcript.utterances
    video = pool_video_track(video_track, _spans(utterances))
    features = {Modality.TEXT: transcript.text, Modality.VIDEO: video.video, Modality.AUDIO: audio.audio}
    for modality, modality_features in features.items():
        if len(modality_features.present) != len(utterances):
            raise ValueError(
                f"{modality.value} features cover {len(modality_features.present)} utterances, "
                f"the transcript has {len(utterances)}"
            )
    with _inference(observe_inference, "fusion", len(utterances)):
        outputs = predictor.predict(
            len(utterances),
            transcript.text,
            video.video,
            audio.audio,
            face_emotions=video.face_emotions,
            voice_emotions=audio.voice_emotions,
            face_quality=video.face_quality,
            translated=[transcript.words is WordsSource.TRANSLATION] * len(utterances),
        )
    fused_emotion, fused_sentiment = outputs["fused"]

    def words_reason(u: Span) -> str | None:
        translated = transcript.words is WordsSource.TRANSLATION
        return UNTRANSLATED if translated and u.text.strip() and not u.translation else None

    results = [
        UtteranceResult(
            index=u.index,
            start_time=round(u.start, 3),
            end_time=round(u.end, 3),
            text=u.text,
            translation=u.translation,
            speaker=u.speaker,
            words=transcript.words if transcript.text.present[i] else WordsSource.MISSING,
            emotions=emotion_scores(fused_emotion[i]),
            sentiments=sentiment_scores(fused_sentiment[i]),
            modalities={
                Modality.TEXT: _prediction(outputs, Modality.TEXT, i, transcript.text, words_reason(u)),
                Modality.VIDEO: _prediction(
                    outputs,
                    Modality.VIDEO,
                    i,
                    video.video,
                    quality=None if video.face_quality is None else video.face_quality[i],
                ),
                Modality.AUDIO: _prediction(outputs, Modality.AUDIO, i, audio.audio),
            },
        )
        for i, u in enumerate(utterances)
    ]
    missing = [
        MissingModality(modality=m, reason=f.missing_reason or f"no {m.value} in any utterance")
        for m, f in features.items()
        if not any(f.present)
    ]
    return AnalysisResult(
        model_version=bundle_version,
        duration_s=round(transcript.media.duration_s, 3),
        language=transcript.language,
        language_probability=transcript.language_probability,
        utterances=results,
        speakers=summarise_speakers(results),
        missing_modalities=missing,
    )
