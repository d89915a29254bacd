"""The analysis result as users see it: the REST API's `result` object and `emotion-analyzer analyze --json`.

Distributions are full (every label present), sum to 1, and are sorted by confidence, highest first.
"""

from collections.abc import Sequence

from pydantic import BaseModel, Field, model_validator

from emotion_contract.labels import EMOTIONS, SENTIMENTS, Emotion, Modality, Sentiment, WordsSource


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
    missing_modalities: list[MissingModality] = Field(
        default_factory=list, description="Modalities that were missing for the whole file, and why"
    )
