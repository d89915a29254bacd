"""Fitting the fusion rule: words read through a translation get a scale of their own, fitted on data."""

import numpy as np

from emotion_contract.labels import EMOTIONS, Modality
from training.fusion_fit import Pool, _fit_head

T, V, A = Modality.TEXT, Modality.VIDEO, Modality.AUDIO
K = len(EMOTIONS)


def _expert(labels: np.ndarray, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    """Calibrated-looking distributions whose top class is the label with probability `accuracy`."""
    top = np.where(rng.random(len(labels)) < accuracy, labels, rng.integers(0, K, len(labels)))
    out = np.full((len(labels), K), 0.3 / (K - 1), dtype=np.float32)
    out[np.arange(len(labels)), top] = 0.7
    return out


def test_words_that_are_noise_in_translation_are_scaled_down_and_english_ones_kept() -> None:
    rng = np.random.default_rng(0)
    n = 600
    labels = rng.integers(0, K, n).astype(np.int64)
    everyone = np.ones(n, dtype=bool)
    english = Pool(
        {T: _expert(labels, 0.8, rng), A: _expert(labels, 0.6, rng)}, {T: everyone, A: everyone}, labels
    )
    noise = rng.integers(0, K, n)
    translated = Pool(
        {T: _expert(noise, 1.0, rng), A: _expert(labels, 0.6, rng), V: _expert(labels, 0.5, rng)},
        {T: everyone, A: everyone, V: everyone},
        labels,
        face_quality=np.ones(n),
        translated=everyone,
    )
    rule, nll = _fit_head([english, translated], K)
    assert rule.translated_words_scale < 0.3
    assert rule.weights[T] > 0.5  # English words still count
    assert np.isfinite(nll)
    # Pooled with the fitted rule, the translated words hardly move the answer away from voice and face.
    pooled = translated.pooled(rule)
    assert (pooled.argmax(axis=1) == labels).mean() > (
        translated.distributions[T].argmax(axis=1) == labels
    ).mean()


def test_a_pool_keeps_its_quality_and_translation_flags_when_rows_are_taken() -> None:
    labels = np.arange(4, dtype=np.int64)
    pool = Pool(
        {V: np.full((4, K), 1 / K, dtype=np.float32)},
        {V: np.ones(4, dtype=bool)},
        labels,
        face_quality=np.array([0.1, 0.2, 0.3, 0.4]),
        translated=np.array([True, False, True, False]),
    )
    taken = pool.rows(np.array([False, True, True, False]))
    assert taken.labels.tolist() == [1, 2]
    assert taken.face_quality is not None and taken.face_quality.tolist() == [0.2, 0.3]
    assert taken.translated is not None and taken.translated.tolist() == [False, True]
