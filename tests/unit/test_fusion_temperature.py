"""The face and voice temperature (training.fusion_temperature): fitted where both count, it undoes the
double counting of errors they share."""

import numpy as np

from emotion_contract.labels import Modality
from shared.model.pooling import MIN_FLOOR, HeadRule
from training.fusion_fit import Pool
from training.fusion_temperature import both_count, fit_temperature

T, V, A = Modality.TEXT, Modality.VIDEO, Modality.AUDIO


def _calibrated(signal: np.ndarray) -> np.ndarray:
    """Each class's mean is 2 on its own axis of a unit Gaussian: the posterior is softmax(2 x)."""
    e = np.exp(2 * signal - (2 * signal).max(axis=1, keepdims=True))
    posterior: np.ndarray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return posterior


def test_a_face_and_a_voice_that_err_together_are_tempered_back_to_one_of_them() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 4000)
    heard, seen = (np.eye(7)[labels] * 2 + rng.normal(size=(4000, 7)) for _ in range(2))
    everywhere = np.ones(len(labels), dtype=bool)
    rule = HeadRule(weights={T: 1.0, V: 1.0, A: 1.0}, floors={T: MIN_FLOOR, V: MIN_FLOOR, A: MIN_FLOOR})

    def fitted(face: np.ndarray, voice: np.ndarray) -> float:
        present = {V: everywhere, A: everywhere}
        return fit_temperature(Pool({V: face, A: voice}, present, labels, np.ones(len(labels))), rule)

    # The face says exactly what the voice says: one piece of evidence counted twice.
    assert 1.7 < fitted(_calibrated(heard), _calibrated(heard)) < 2.3
    # Errors of their own: the product is already right.
    assert fitted(_calibrated(seen), _calibrated(heard)) < 1.2


def test_only_utterances_where_both_count_are_fitted_on() -> None:
    p = np.full((3, 7), 1 / 7, dtype=np.float32)
    pool = Pool(
        {V: p, A: p},
        {V: np.array([True, True, False]), A: np.array([True, True, True])},
        np.zeros(3, dtype=np.int64),
        face_quality=np.array([1.0, 0.0, 1.0]),
    )
    assert both_count(pool).tolist() == [True, False, False]
