"""What the console's templates show, computed from the API's models: bars, timeline positions, labels."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from emotion_contract.labels import EMOTIONS, Modality
from emotion_contract.results import (
    AnalysisResult,
    EmotionScore,
    ModalityPrediction,
    SentimentScore,
    UtteranceResult,
)

# What a person calls each modality: the video is read for the face, the audio for the voice.
MODALITY_NAMES: Final = {Modality.VIDEO: "face", Modality.AUDIO: "voice", Modality.TEXT: "words"}
# The narrowest timeline segment, in percent, so that a short utterance can still be seen and clicked.
MIN_SEGMENT_PERCENT: Final = 0.8
LEGEND: Final = EMOTIONS


@dataclass(frozen=True)
class Bar:
    label: str
    confidence: float

    @property
    def percent(self) -> str:
        return f"{self.confidence * 100:.0f}%"


@dataclass(frozen=True)
class ModalityView:
    key: str
    name: str
    available: bool
    reason: str | None
    emotions: list[Bar]
    sentiments: list[Bar]


@dataclass(frozen=True)
class UtteranceView:
    index: int
    start: float
    end: float
    speaker: str | None
    text: str
    emotion: Bar
    sentiment: Bar
    emotions: list[Bar]
    sentiments: list[Bar]
    modalities: list[ModalityView]
    left_percent: float
    width_percent: float

    @property
    def missing(self) -> list[ModalityView]:
        return [modality for modality in self.modalities if not modality.available]


def _bars(scores: list[EmotionScore] | list[SentimentScore] | None) -> list[Bar]:
    return [Bar(score.label.value, score.confidence) for score in scores or []]


def _modality(modality: Modality, prediction: ModalityPrediction | None) -> ModalityView:
    if prediction is None:
        return ModalityView(modality.value, MODALITY_NAMES[modality], False, "not analysed", [], [])
    return ModalityView(
        key=modality.value,
        name=MODALITY_NAMES[modality],
        available=prediction.available,
        reason=prediction.reason,
        emotions=_bars(prediction.emotions),
        sentiments=_bars(prediction.sentiments),
    )


def _utterance(utterance: UtteranceResult, duration_s: float) -> UtteranceView:
    left = min(100.0, utterance.start_time / duration_s * 100)
    width = max(MIN_SEGMENT_PERCENT, (utterance.end_time - utterance.start_time) / duration_s * 100)
    return UtteranceView(
        index=utterance.index,
        start=utterance.start_time,
        end=utterance.end_time,
        speaker=utterance.speaker,
        text=utterance.text,
        emotion=_bars(utterance.emotions)[0],
        sentiment=_bars(utterance.sentiments)[0],
        emotions=_bars(utterance.emotions),
        sentiments=_bars(utterance.sentiments),
        modalities=[_modality(m, utterance.modalities.get(m)) for m in MODALITY_NAMES],
        left_percent=round(left, 3),
        width_percent=round(min(width, 100.0 - left), 3),
    )


@dataclass(frozen=True)
class SpeakerView:
    speaker: str
    utterances: int
    talk_time_s: float
    emotion: Bar
    sentiment: Bar
    lane: list[UtteranceView]
    """Their utterances, placed on the file's timeline."""


def speaker_views(result: AnalysisResult, utterances: list[UtteranceView]) -> list[SpeakerView]:
    return [
        SpeakerView(
            speaker=summary.speaker,
            utterances=summary.utterances,
            talk_time_s=summary.talk_time_s,
            emotion=_bars(summary.emotions)[0],
            sentiment=_bars(summary.sentiments)[0],
            lane=[u for u in utterances if u.speaker == summary.speaker],
        )
        for summary in result.speakers
    ]


def utterance_views(result: AnalysisResult) -> list[UtteranceView]:
    ends = [utterance.end_time for utterance in result.utterances]
    duration_s = max([result.duration_s, *ends]) or 1.0
    return [_utterance(utterance, duration_s) for utterance in result.utterances]


def clock(seconds: float | None) -> str:
    """`1:05.3` for 65.3 s; an empty string when unknown."""
    if seconds is None:
        return ""
    minutes, rest = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}:{rest:04.1f}"


def when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def size(size_bytes: int) -> str:
    value = float(size_bytes)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size_bytes} bytes"
