"""Scores of one classification head: accuracy, weighted precision and F1, calibration error, confusion."""

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score

ECE_BINS = 15

FloatArray = npt.NDArray[np.floating]
IntArray = npt.NDArray[np.integer]


class HeadScores(BaseModel):
    """Weighted averages weigh each class by its share of the true labels (MELD's usual report)."""

    n: int = Field(ge=0)
    accuracy: float
    weighted_precision: float
    weighted_f1: float
    macro_f1: float
    ece: float = Field(description=f"{ECE_BINS}-bin expected calibration error of the top class")
    labels: list[str]
    confusion: list[list[int]] = Field(description="rows: true label, columns: predicted label")


def _check(probabilities: FloatArray, labels: IntArray) -> None:
    if probabilities.ndim != 2 or labels.ndim != 1 or len(probabilities) != len(labels):
        raise ValueError(
            f"expected (n, k) probabilities and (n,) labels, got {probabilities.shape}, {labels.shape}"
        )
    if len(labels) == 0:
        raise ValueError("nothing to score: no samples")


def expected_calibration_error(probabilities: FloatArray, labels: IntArray, n_bins: int = ECE_BINS) -> float:
    """Σ_b |B_b|/n · |accuracy(B_b) − mean confidence(B_b)| over equal-width confidence bins (lo, hi]."""
    probabilities, labels = np.asarray(probabilities, dtype=np.float64), np.asarray(labels)
    _check(probabilities, labels)
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    error = 0.0
    for b in range(n_bins):
        members = bins == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def score_head(probabilities: FloatArray, labels: IntArray, names: Sequence[str]) -> HeadScores:
    """Scores of the argmax predictions of (n, k) probabilities against (n,) true label indices."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    _check(probabilities, labels)
    if probabilities.shape[1] != len(names):
        raise ValueError(f"{probabilities.shape[1]} classes, but {len(names)} names")
    predicted = probabilities.argmax(axis=1)
    classes = list(range(len(names)))
    return HeadScores(
        n=len(labels),
        accuracy=float(accuracy_score(labels, predicted)),
        weighted_precision=float(
            precision_score(labels, predicted, labels=classes, average="weighted", zero_division=0)
        ),
        weighted_f1=float(f1_score(labels, predicted, labels=classes, average="weighted", zero_division=0)),
        macro_f1=float(f1_score(labels, predicted, labels=classes, average="macro", zero_division=0)),
        ece=expected_calibration_error(probabilities, labels),
        labels=list(names),
        confusion=confusion_matrix(labels, predicted, labels=classes).tolist(),
    )


class Interval(BaseModel):
    """A bootstrap percentile interval: resampling the scored items with replacement."""

    low: float
    high: float
    level: float = Field(description="e.g. 0.9: 5th to 95th percentile")


def bootstrap_interval(
    probabilities: FloatArray,
    labels: IntArray,
    statistic: Callable[[FloatArray, IntArray], float],
    *,
    resamples: int = 1000,
    level: float = 0.9,
    seed: int = 0,
) -> Interval:
    """How far `statistic` moves when the same number of items is drawn again from those scored: on a
    hundred clips, an ECE moves by several hundredths by chance alone. (ECE is biased upwards on small
    samples, and more so on resamples: the interval shows its spread and may lie above the estimate.)"""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    _check(probabilities, labels)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        drawn = rng.integers(0, len(labels), len(labels))
        values.append(statistic(probabilities[drawn], labels[drawn]))
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return Interval(low=round(float(low), 4), high=round(float(high), 4), level=level)


def ece_if_calibrated(
    probabilities: FloatArray, *, draws: int = 1000, level: float = 0.9, seed: int = 0
) -> tuple[float, Interval]:
    """The ECE that a perfectly calibrated answer with these confidences reads on this many items: each
    item's label drawn from its own distribution, `draws` times. On a hundred clips that is about 0.1, so an
    observed ECE near it is what calibration looks like there, not evidence against it. The mean and the
    `level` interval of the draws."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or not len(probabilities):
        raise ValueError(f"expected (n, k) probabilities, got {probabilities.shape}")
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(probabilities / probabilities.sum(axis=1, keepdims=True), axis=1)
    values = []
    for _ in range(draws):
        u = rng.random((len(probabilities), 1))
        labels = np.minimum((u > cumulative).sum(axis=1), probabilities.shape[1] - 1)
        values.append(expected_calibration_error(probabilities, labels))
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return round(float(np.mean(values)), 4), Interval(
        low=round(float(low), 4), high=round(float(high), 4), level=level
    )


def confusion_text(scores: HeadScores) -> str:
    """The confusion matrix as an aligned table: true labels down, predictions across."""
    corner = "true \\ pred"
    first = max(len(corner), *(len(name) for name in scores.labels)) + 1
    width = max(6, *(len(name) for name in scores.labels)) + 1
    header = corner.ljust(first) + "".join(name.rjust(width) for name in scores.labels)
    rows = [
        name.ljust(first) + "".join(str(count).rjust(width) for count in row)
        for name, row in zip(scores.labels, scores.confusion, strict=True)
    ]
    return "\n".join([header, *rows])
