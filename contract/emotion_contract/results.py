"""The analysis result as users see it: the REST API's `result` object and `emotion-analyzer analyze --json`.

Distributions are full (every label present), sum to 1, and are sorted by confidence, highest first.
"""

from collections.abc import Sequence

from pydantic import BaseModel, Field, model_validator

from emotion_contract.labels import (
    EMOTIONS,
    SENTIMENTS,
    SPEAKER_PATTERN,
    Emotion,
    Modality,
    Sentiment,
    WordsSource,
)


class EmotionScore(BaseModel):
    label: Emotion
    confidence: float = Field(ge=0.0, le=1.0)


class SentimentScore(BaseModel):
    label: Sentiment
    confidence: float = Field(ge=0.0, le=1.0)


def _check_distribution(scores: Sequence[EmotionScore | SentimentScore], labels: Sequence[str]) -> None:
    if sorted(s.label.value for s in scores) != sorted(labels):
        raise ValueError(f"a distribution must score each of {list(labels)} exactly once")
    total = sum(s.confidence for s in scores)
    if abs(total - 1.0) > 1e-3:
        raise ValueError(f"confidences must sum to 1, got {total:.6f}")
    confidences = [s.confidence for s in scores]
    if confidences != sorted(confidences, reverse=True):
        raise ValueError("scores must be sorted by confidence, highest first")


def emotion_scores(probabilities: Sequence[float]) -> list[EmotionScore]:
    """Turn head-ordered probabilities into the sorted list the API returns."""
    if len(probabilities) != len(EMOTIONS):
        raise ValueError(f"expected {len(EMOTIONS)} emotion probabilities, got {len(probabilities)}")
    pairs = zip(EMOTIONS, probabilities, strict=True)
    scores = [EmotionScore(label=Emotion(lab), confidence=float(p)) for lab, p in pairs]
    return sorted(scores, key=lambda s: s.confidence, reverse=True)


def sentiment_scores(probabilities: Sequence[float]) -> list[SentimentScore]:
    if len(probabilities) != len(SENTIMENTS):
        raise ValueError(f"expected {len(SENTIMENTS)} sentiment probabilities, got {len(probabilities)}")
    pairs = zip(SENTIMENTS, probabilities, strict=True)
    scores = [SentimentScore(label=Sentiment(lab), confidence=float(p)) for lab, p in pairs]
    return sorted(scores, key=lambda s: s.confidence, reverse=True)


class ModalityPrediction(BaseModel):
    """What one modality contributed to an utterance, and its own distribution when it has one."""

    available: bool = Field(description="False when the modality was missing for this utterance")
    reason: str | None = Field(default=None, description="Why the modality is missing, when it is")
    quality: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="The face: how far its pictures could be trusted (size and sharpness, 0-1), which scales "
        "its weight in the fused answer",
    )
    emotions: list[EmotionScore] | None = None
    sentiments: list[SentimentScore] | None = None


class UtteranceResult(BaseModel):
    index: int = Field(ge=0)
    start_time: float = Field(ge=0.0, description="Seconds from the start of the file")
    end_time: float = Field(ge=0.0)
    text: str = Field(description="The words as spoken, in the language spoken")
    translation: str | None = Field(
        default=None, description="Whisper's English translation of the words, when the speech is not English"
    )
    words: WordsSource = Field(
        default=WordsSource.TRANSCRIPT,
        description="What the words model read: the transcript (English speech), the translation, or nothing "
        "(modalities.text.reason says why)",
    )
    speaker: str | None = Field(
        default=None,
        pattern=SPEAKER_PATTERN,
        description="Who speaks it: S1, S2, … in the order people first speak; the same person keeps "
        "their label through the file. None where speakers were not told apart (no speech found)",
    )
    emotions: list[EmotionScore] = Field(description="Fused emotion distribution, sorted by confidence")
    sentiments: list[SentimentScore] = Field(description="Fused sentiment distribution, sorted by confidence")
    modalities: dict[Modality, ModalityPrediction] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid(self) -> "UtteranceResult":
        if self.end_time < self.start_time:
            raise ValueError("end_time is before start_time")
        _check_distribution(self.emotions, EMOTIONS)
        _check_distribution(self.sentiments, SENTIMENTS)
        return self


class SpeakerSummary(BaseModel):
    """One person's share of the file and how they came across."""

    speaker: str = Field(pattern=SPEAKER_PATTERN, examples=["S1"])
    utterances: int = Field(ge=1)
    talk_time_s: float = Field(ge=0.0, description="Seconds of their utterances")
    emotions: list[EmotionScore] = Field(
        description="The mean of their utterances' fused emotion distributions, weighted by length"
    )
    sentiments: list[SentimentScore] = Field(
        description="The mean of their utterances' fused sentiment distributions, weighted by length"
    )


def _weighted_mean(
    distributions: Sequence[Sequence[EmotionScore] | Sequence[SentimentScore]],
    weights: Sequence[float],
    labels: Sequence[str],
) -> list[float]:
    """Head-ordered (`labels`) mean of sorted distributions, each weighing `weights[i]`."""
    total = sum(weights)
    sums = dict.fromkeys(labels, 0.0)
    for scores, weight in zip(distributions, weights, strict=True):
        for score in scores:
            sums[score.label.value] += score.confidence * weight / total
    return [sums[label] for label in labels]


def summarise_speakers(utterances: Sequence[UtteranceResult]) -> list[SpeakerSummary]:
    """Per speaker, in order of first appearance: talk time, utterance count and the length-weighted mean
    distributions (an utterance of no length weighs as a millisecond)."""
    spoken: dict[str, list[UtteranceResult]] = {}
    for utterance in utterances:
        if utterance.speaker is not None:
            spoken.setdefault(utterance.speaker, []).append(utterance)
    summaries = []
    for speaker, own in spoken.items():
        weights = [max(u.end_time - u.start_time, 1e-3) for u in own]
        summaries.append(
            SpeakerSummary(
                speaker=speaker,
                utterances=len(own),
                talk_time_s=round(sum(u.end_time - u.start_time for u in own), 3),
                emotions=emotion_scores(_weighted_mean([u.emotions for u in own], weights, EMOTIONS)),
                sentiments=sentiment_scores(_weighted_mean([u.sentiments for u in own], weights, SENTIMENTS)),
            )
        )
    return summaries


class MissingModality(BaseModel):
    modality: Modality
    reason: str


class AnalysisResult(BaseModel):
    model_version: str = Field(description="Version of the model bundle that produced the result")
    duration_s: float = Field(ge=0.0, description="Duration of the analysed file in seconds")
    language: str | None = Field(default=None, description="Spoken language detected by the transcriber")
    language_probability: float | None = Field(
        default=None, ge=0.0, le=1.0, description="How sure the transcriber was of the language (0-1)"
    )
    utterances: list[UtteranceResult]
    speakers: list[SpeakerSummary] = Field(
        default_factory=list,
        description="Each person who speaks, in order of first appearance; empty where speakers were not "
        "told apart",
    )
    missing_modalities: list[MissingModality] = Field(
        default_factory=list, description="Modalities that were missing for the whole file, and why"
    )
