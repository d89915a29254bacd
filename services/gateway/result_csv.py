"""An analysis result as CSV: one row per utterance, fused scores first, then each modality's own."""

import csv
import io
from typing import Final

from emotion_contract.labels import EMOTIONS, MODALITIES, SENTIMENTS
from emotion_contract.results import (
    AnalysisResult,
    EmotionScore,
    ModalityPrediction,
    SentimentScore,
    UtteranceResult,
)

UTTERANCE_COLUMNS: Final = (
    "index",
    "start_time",
    "end_time",
    "speaker",
    "text",
    "top_emotion",
    "top_emotion_confidence",
    "top_sentiment",
    "top_sentiment_confidence",
)


def header() -> list[str]:
    fused = [f"emotion_{label}" for label in EMOTIONS] + [f"sentiment_{label}" for label in SENTIMENTS]
    per_modality = [
        column
        for modality in MODALITIES
        for column in (
            f"{modality}_available",
            f"{modality}_top_emotion",
            f"{modality}_top_emotion_confidence",
            f"{modality}_top_sentiment",
            f"{modality}_top_sentiment_confidence",
            f"{modality}_missing_reason",
        )
    ]
    return [*UTTERANCE_COLUMNS, *fused, *per_modality]


def _confidence(value: float) -> str:
    return f"{value:.4f}"


def _by_label(scores: list[EmotionScore] | list[SentimentScore], labels: tuple[str, ...]) -> list[str]:
    confidences = {score.label.value: score.confidence for score in scores}
    return [_confidence(confidences.get(label, 0.0)) for label in labels]


def _modality_cells(prediction: ModalityPrediction | None) -> list[str]:
    if prediction is None:
        return ["false", "", "", "", "", "not analysed"]
    emotion = prediction.emotions[0] if prediction.emotions else None
    sentiment = prediction.sentiments[0] if prediction.sentiments else None
    return [
        "true" if prediction.available else "false",
        emotion.label.value if emotion else "",
        _confidence(emotion.confidence) if emotion else "",
        sentiment.label.value if sentiment else "",
        _confidence(sentiment.confidence) if sentiment else "",
        prediction.reason or "",
    ]


def _row(utterance: UtteranceResult) -> list[str]:
    emotion, sentiment = utterance.emotions[0], utterance.sentiments[0]
    modalities = {modality.value: prediction for modality, prediction in utterance.modalities.items()}
    return [
        str(utterance.index),
        f"{utterance.start_time:.3f}",
        f"{utterance.end_time:.3f}",
        utterance.speaker or "",
        utterance.text,
        emotion.label.value,
        _confidence(emotion.confidence),
        sentiment.label.value,
        _confidence(sentiment.confidence),
        *_by_label(utterance.emotions, EMOTIONS),
        *_by_label(utterance.sentiments, SENTIMENTS),
        *(cell for modality in MODALITIES for cell in _modality_cells(modalities.get(modality))),
    ]


# A spreadsheet runs a cell that starts like a formula. The words are whatever was said in the video, so a
# speaker could plant one: such a cell is prefixed with an apostrophe, which shows it as text (OWASP's
# advice for CSV injection).
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def defused(cell: str) -> str:
    return f"'{cell}" if cell.startswith(FORMULA_STARTS) else cell


def result_csv(result: AnalysisResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header())
    writer.writerows([defused(cell) for cell in _row(utterance)] for utterance in result.utterances)
    return buffer.getvalue()
