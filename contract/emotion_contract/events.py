"""Every Kafka event of the pipeline: one pydantic model per topic, with the topic names beside them.

Events are keyed by job id (`Event.key`) so that one job's events stay ordered within a topic.
`event_id` is derived from the job, the topic and the attempt, so a redelivered or re-published event
carries the same id and consumers can deduplicate on it.
"""

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import ClassVar, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from emotion_contract.labels import SPEAKER_PATTERN, SpeakerCount, WordsSource
from emotion_contract.results import AnalysisResult

SCHEMA_VERSION: Final = 1
_EVENT_NAMESPACE: Final = uuid.UUID("5b0f7c1e-8d7a-4c55-9a61-3f4e2f1d9a10")


class Topic(StrEnum):
    ANALYSIS_REQUESTED = "analysis.requested"
    TRANSCRIPT_READY = "transcript.ready"
    FEATURES_VIDEO = "features.video"
    FEATURES_AUDIO = "features.audio"
    ANALYSIS_PROGRESS = "analysis.progress"
    ANALYSIS_COMPLETED = "analysis.completed"
    ANALYSIS_FAILED = "analysis.failed"
    DEAD_LETTER = "analysis.dead_letter"


class Stage(StrEnum):
    """Where a job is; a failed job names the stage it failed in."""

    UPLOAD = "upload"
    TRANSCRIBE = "transcribe"
    ENCODE_VIDEO = "encode_video"
    ENCODE_AUDIO = "encode_audio"
    FUSE = "fuse"


class Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, description="Bumped on breaking changes")
    job_id: uuid.UUID = Field(description="The analysis this event belongs to; also the Kafka key")
    attempt: int = Field(default=1, ge=1, description="Re-drives of a stuck job increment it")
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    TOPIC: ClassVar[Topic]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def event_id(self) -> uuid.UUID:
        """Stable across redeliveries and re-publishing of the same step of the same attempt."""
        return uuid.uuid5(
            _EVENT_NAMESPACE, f"{self.job_id}:{self.TOPIC.value}:{self.attempt}:{self._id_suffix()}"
        )

    def _id_suffix(self) -> str:
        return ""

    @property
    def key(self) -> bytes:
        return str(self.job_id).encode()


class MediaInfo(BaseModel):
    """What the transcriber found in the uploaded file."""

    duration_s: float = Field(ge=0.0)
    has_video: bool
    has_audio: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None


class Span(BaseModel):
    """One utterance: a speech segment with its times and words."""

    index: int = Field(ge=0)
    start: float = Field(ge=0.0, description="Seconds from the start of the file")
    end: float = Field(ge=0.0)
    text: str
    translation: str | None = Field(
        default=None, description="Whisper's English translation of the words, when the speech is not English"
    )
    speaker: str | None = Field(
        default=None,
        pattern=SPEAKER_PATTERN,
        description="Who speaks it: S1, S2, … in the order people first speak in the file; None where "
        "speakers were not told apart (no speech, or diarization off)",
    )

    @model_validator(mode="after")
    def _ordered(self) -> "Span":
        if self.end < self.start:
            raise ValueError("end is before start")
        return self


class FeatureMatrix(BaseModel):
    """A float32 matrix (one row per utterance) carried as base64, a third of the size of a JSON list.

    The contract carries it as text; `shared.feature_matrix` turns it into a numpy array and back, so that
    the contract needs no numpy."""

    rows: int = Field(ge=0)
    cols: int = Field(ge=0)
    data: str = Field(description="base64 of the little-endian float32 values, row-major")

    @model_validator(mode="after")
    def _sized(self) -> "FeatureMatrix":
        if len(self.data) * 3 // 4 < self.rows * self.cols * 4 - 3:
            raise ValueError("data is shorter than rows × cols float32 values")
        return self


class ModalityFeatures(BaseModel):
    """One modality's encoder output for every utterance of a job."""

    features: FeatureMatrix | None = Field(
        default=None, description="(n_utterances, 128) embeddings; None when the modality is missing"
    )
    present: list[bool] = Field(description="Per utterance: was the modality there (a face, a voice)?")
    missing_reason: str | None = Field(default=None, description="Why the modality is missing for the file")
    trained: bool = Field(default=True, description="False while the bundle's encoder has no trained weights")


class AnalysisRequested(Event):
    """The gateway accepted a file; the transcriber starts."""

    TOPIC: ClassVar[Topic] = Topic.ANALYSIS_REQUESTED
    bucket: str = Field(examples=["uploads"])
    object_key: str = Field(examples=["uploads/6f1c.../talk.mp4"])
    filename: str = Field(examples=["talk.mp4"])
    size_bytes: int = Field(ge=0)
    speakers: SpeakerCount | None = Field(
        default=None,
        description="How many people speak in the file, when the caller knows; None: the transcriber "
        "estimates it",
    )


class VoiceInputs(BaseModel):
    """The voice head's input for each utterance, pooled from the Whisper encoder states that the
    transcription computed: the audio encoder reads the voice from them instead of running that encoder a
    second time over the same audio."""

    whisper: str = Field(description="Fingerprint of the Whisper model whose encoder states these are")
    margins_s: list[float] = Field(description="The widenings of each utterance's span pooled, in seconds")
    pooled: FeatureMatrix = Field(
        description="(n_utterances, len(margins_s) × 1024): mean and standard deviation of the states over "
        "each widening, concatenated"
    )


class Transcript(BaseModel):
    """What the transcription stage finds in a file: its media, its utterances and their text features."""

    media: MediaInfo
    language: str | None = None
    language_probability: float | None = Field(default=None, ge=0.0, le=1.0)
    words: WordsSource = Field(
        default=WordsSource.TRANSCRIPT,
        description="What the words model read: the transcript, the translation, or nothing "
        "(text.missing_reason says why)",
    )
    utterances: list[Span]
    text: ModalityFeatures
    speech_found: bool = Field(description="False when no speech was detected: one span covers the file")
    voice_inputs: VoiceInputs | None = Field(
        default=None,
        description="The voice head's inputs per utterance from the transcription's own encoder pass; None "
        "without speech or where the transcriber does not send them",
    )


class TranscriptReady(Event, Transcript):
    """Utterances were found and their text encoded; the video and audio encoders start. The event is the
    stage's `Transcript` with the job's file and model version."""

    TOPIC: ClassVar[Topic] = Topic.TRANSCRIPT_READY
    bucket: str
    object_key: str
    bundle_version: str


class VideoTrack(BaseModel):
    """The picture over the whole video, independent of the utterances: the face's expression at a fixed
    rate and, once R3D-18 is trained, its clip embeddings over fixed windows. Fusion pools it per utterance
    (`shared.model.inference.pool_video_track` on the server)."""

    interval_s: float = Field(gt=0, description="Seconds between the pictures looked at")
    samples: int = Field(default=0, ge=0, description="Pictures looked at")
    face_times: list[float] = Field(
        default_factory=list, description="Seconds of each picture in which a face was seen, in order"
    )
    face_emotions: FeatureMatrix | None = Field(
        default=None, description="(len(face_times), 7) calibrated face-expression probabilities, MELD order"
    )
    face_quality: list[float] | None = Field(
        default=None,
        description="Per face picture, how far it can be trusted (0-1: its size and sharpness); None: all 1",
    )
    windows: list[tuple[float, float]] = Field(
        default_factory=list, description="[start, end) seconds of each R3D-18 clip (empty while it is off)"
    )
    clip_features: FeatureMatrix | None = Field(
        default=None, description="(len(windows), 128) R3D-18 clip embeddings"
    )
    missing_reason: str | None = Field(default=None, description="Why the file has no usable picture")
    trained: bool = Field(default=True, description="False while no trained video model could run")

    @model_validator(mode="after")
    def _aligned(self) -> "VideoTrack":
        if self.face_emotions is not None and self.face_emotions.rows != len(self.face_times):
            raise ValueError(f"{self.face_emotions.rows} face distributions for {len(self.face_times)} times")
        if self.face_quality is not None and len(self.face_quality) != len(self.face_times):
            raise ValueError(f"{len(self.face_quality)} face qualities for {len(self.face_times)} times")
        if self.clip_features is not None and self.clip_features.rows != len(self.windows):
            raise ValueError(f"{self.clip_features.rows} clip embeddings for {len(self.windows)} windows")
        return self


class VideoFeaturesReady(Event):
    """The video encoder followed the picture of the whole file (it starts from `analysis.requested`, beside
    the transcriber)."""

    TOPIC: ClassVar[Topic] = Topic.FEATURES_VIDEO
    bundle_version: str
    track: VideoTrack


class VoiceFeatures(BaseModel):
    """What the audio stage finds: mel-CNN embeddings, or per utterance the voice's emotions."""

    audio: ModalityFeatures
    voice_emotions: FeatureMatrix | None = Field(
        default=None,
        description="(n_utterances, 7) calibrated voice-emotion probabilities where a voice was heard",
    )


class AudioFeaturesReady(Event, VoiceFeatures):
    """The audio stage's `VoiceFeatures` for every utterance of the transcript."""

    TOPIC: ClassVar[Topic] = Topic.FEATURES_AUDIO
    bundle_version: str


MEASURED_DESCRIPTION = (
    "Seconds the file holds, as the stage measured them (every packet, not the header's claim), once the "
    "stage had begun work on it; the job is charged at least this"
)


class AnalysisProgress(Event):
    """A service started working on a stage of the job; or, with `measured_s`, measured the file it works on
    (the charge follows the work, whatever the header claimed)."""

    TOPIC: ClassVar[Topic] = Topic.ANALYSIS_PROGRESS
    stage: Stage
    service: str
    measured_s: float | None = Field(default=None, ge=0.0, description=MEASURED_DESCRIPTION)

    def _id_suffix(self) -> str:
        return self.stage.value if self.measured_s is None else f"{self.stage.value}:measured"


class AnalysisCompleted(Event):
    TOPIC: ClassVar[Topic] = Topic.ANALYSIS_COMPLETED
    result: AnalysisResult


class AnalysisFailed(Event):
    TOPIC: ClassVar[Topic] = Topic.ANALYSIS_FAILED
    stage: Stage
    code: str = Field(description="Stable machine-readable error code", examples=["no_audio_track"])
    reason: str = Field(description="Human-readable reason", examples=["the video has no audio track"])
    measured_s: float | None = Field(
        default=None,
        ge=0.0,
        description=MEASURED_DESCRIPTION + ". None where the stage failed before any work (the file could "
        "not be read): only then are the job's units given back",
    )


class DeadLettered(Event):
    """A message a consumer gave up on: one it could not read (bad JSON, a claim ticket whose body is gone
    or points outside its job, a body that is no event of its topic), or one whose handling failed every
    delivery. Its job is failed (`event_unreadable`, `payload_unreadable` or `delivery_failed`). It says
    where the message was and why, never what it held (a transcript is the user's data, and the topic keeps
    its messages for days): the original stays in its topic at `partition` and `offset`."""

    TOPIC: ClassVar[Topic] = Topic.DEAD_LETTER
    consumer: str = Field(description="The consumer group that gave up", examples=["transcriber"])
    topic: str = Field(description="Where the message came from", examples=["analysis.requested"])
    partition: int | None = Field(default=None, ge=0)
    offset: int | None = Field(default=None, ge=0)
    deliveries: int = Field(ge=1)
    code: str = Field(description="Why, as the job's failure code", examples=["delivery_failed"])
    last_error: str | None = Field(default=None, description="The last error, for the operators")
    message_id: uuid.UUID | None = Field(default=None, description="The event's id, where it could be read")

    def _id_suffix(self) -> str:
        return f"{self.consumer}:{self.topic}:{self.partition}:{self.offset}:{self.message_id}"
