"""training.metrics and training.calibrate against hand-computed values and known temperatures."""

import numpy as np
import pytest
import torch

from shared.model.config import ModelConfig
from shared.model.fusion import FusionClassifier
from training.calibrate import fit_calibration, fit_temperature, set_temperatures
from training.metrics import (
    bootstrap_interval,
    confusion_text,
    ece_if_calibrated,
    expected_calibration_error,
    score_head,
)
from training.model import Temperatures

# y = true, p = predicted; per class (TP, FP, FN): 0 → (2, 0, 1), 1 → (1, 1, 1), 2 → (1, 1, 0)
TRUE = np.array([0, 0, 0, 1, 1, 2])
PREDICTED = np.array([0, 0, 1, 1, 2, 2])


def one_hot(predicted: np.ndarray, k: int, confidence: float = 0.9) -> np.ndarray:
    probabilities = np.full((len(predicted), k), (1 - confidence) / (k - 1))
    probabilities[np.arange(len(predicted)), predicted] = confidence
    return probabilities


def test_weighted_scores_match_a_hand_computation() -> None:
    scores = score_head(one_hot(PREDICTED, 3), TRUE, ["a", "b", "c"])
    # F1 per class: 2·1·(2/3)/(1+2/3) = 0.8, 0.5, 2·0.5·1/1.5 = 2/3; supports 3, 2, 1
    assert scores.weighted_f1 == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * (2 / 3)) / 6)
    # precision per class: 1, 0.5, 0.5
    assert scores.weighted_precision == pytest.approx((3 * 1.0 + 2 * 0.5 + 1 * 0.5) / 6)
    assert scores.accuracy == pytest.approx(4 / 6)
    assert scores.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert scores.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert scores.n == 6


def test_a_class_never_predicted_counts_as_zero_not_an_error() -> None:
    scores = score_head(one_hot(np.array([0, 0, 0]), 3), np.array([0, 1, 2]), ["a", "b", "c"])
    assert scores.weighted_f1 == pytest.approx((1 * 0.5) / 3)  # class a: P 1/3, R 1, F1 0.5
    assert scores.confusion[1] == [1, 0, 0]


def test_ece_is_zero_when_confidence_equals_accuracy() -> None:
    # 10 answers at confidence 0.8 of which 8 are right, 10 at 0.6 of which 6 are right.
    probabilities = np.array([[0.8, 0.2]] * 10 + [[0.4, 0.6]] * 10)
    labels = np.array([0] * 8 + [1] * 2 + [1] * 6 + [0] * 4)
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_labels_drawn_from_the_predictions_is_near_zero() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20_000, 7)) * 2
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(7, p=p) for p in probabilities])
    assert expected_calibration_error(probabilities, labels) < 0.02


def test_ece_of_overconfident_predictions() -> None:
    # Always 90 % sure, right half of the time: one bin, |0.5 − 0.9|.
    probabilities = one_hot(np.zeros(10, dtype=int), 3, confidence=0.9)
    labels = np.array([0, 1] * 5)
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.4)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="probabilities"):
        expected_calibration_error(np.ones((3, 2)) / 2, np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="no samples"):
        score_head(np.zeros((0, 3)), np.zeros(0, dtype=int), ["a", "b", "c"])
    with pytest.raises(ValueError, match="names"):
        score_head(one_hot(PREDICTED, 3), TRUE, ["a", "b"])


def test_confusion_text_has_a_row_per_true_label() -> None:
    table = confusion_text(score_head(one_hot(PREDICTED, 3), TRUE, ["anger", "joy", "neutral"]))
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[1].split() == ["anger", "2", "1", "0"]


def test_fit_temperature_recovers_the_temperature_that_generated_the_labels() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(20_000, 7, generator=generator) * 3
    labels = torch.multinomial((logits / 2.5).softmax(-1), 1, generator=generator).flatten()
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.05)


def test_temperatures_land_in_the_fusion_buffers_and_scale_its_probabilities() -> None:
    fusion = FusionClassifier(ModelConfig()).eval()
    inputs = [torch.randn(4, 128) for _ in range(3)] + [torch.ones(4, 3)]
    emotion_logits, sentiment_logits = fusion(*inputs)
    set_temperatures(fusion, Temperatures(emotion=2.0, sentiment=0.5))
    emotion, sentiment = fusion.probabilities(*inputs)
    assert torch.allclose(emotion, (emotion_logits / 2.0).softmax(-1))
    assert torch.allclose(sentiment, (sentiment_logits / 0.5).softmax(-1))
    assert "emotion_temperature" in fusion.state_dict()


def test_class_biases_undo_a_prior_shift_that_one_temperature_cannot() -> None:
    """Logits that over-predict class 0 by a constant (as class-weighted training leaves rare classes):
    the fitted biases find the shift, centred, and the calibrated probabilities are the true ones."""
    generator = torch.Generator().manual_seed(1)
    true_logits = torch.randn(20_000, 4, generator=generator) * 2
    labels = torch.multinomial(true_logits.softmax(-1), 1, generator=generator).flatten()
    shift = torch.tensor([1.5, 0.0, 0.0, 0.0])
    temperature, bias = fit_calibration(true_logits + shift, labels)
    assert temperature == pytest.approx(1.0, abs=0.05)
    assert bias == pytest.approx((-shift + shift.mean()).tolist(), abs=0.1)
    fusion = FusionClassifier(ModelConfig()).eval()
    inputs = [torch.randn(4, 128) for _ in range(3)] + [torch.ones(4, 3)]
    calibration = Temperatures(emotion=2.0, sentiment=1.0, emotion_bias=[0.5] + [0.0] * 6, sentiment_bias=[])
    set_temperatures(fusion, calibration)
    emotion_logits, sentiment_logits = fusion(*inputs)
    emotion, sentiment = fusion.probabilities(*inputs)
    expected = calibration.apply(emotion_logits, sentiment_logits)
    assert torch.allclose(emotion, expected[0]) and torch.allclose(sentiment, expected[1])
    assert torch.allclose(emotion, (emotion_logits / 2.0 + torch.tensor([0.5] + [0.0] * 6)).softmax(-1))


def test_fusion_weights_saved_before_the_biases_load_with_zero_biases() -> None:
    fusion = FusionClassifier(ModelConfig())
    state = {k: v for k, v in fusion.state_dict().items() if not k.endswith("_bias")}
    fresh = FusionClassifier(ModelConfig())
    fresh.load_state_dict(state, strict=True)
    assert not state_of(fresh, "emotion_bias").any() and not state_of(fresh, "sentiment_bias").any()


def state_of(module: torch.nn.Module, name: str) -> torch.Tensor:
    value: torch.Tensor = module.state_dict()[name]
    return value


def test_classes_too_rare_for_a_bias_leave_the_temperature_alone() -> None:
    logits = torch.randn(200, 3, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0] * 120 + [1] * 75 + [2] * 5)
    temperature, bias = fit_calibration(logits, labels)
    assert bias == [0.0, 0.0, 0.0] and temperature == fit_temperature(logits, labels)


def test_a_bootstrap_interval_narrows_with_more_items() -> None:
    rng = np.random.default_rng(1)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        logits = rng.normal(size=(n, 4)) * 2
        probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        labels = np.array([rng.choice(4, p=p) for p in probabilities])  # calibrated by construction
        return probabilities, labels

    few, many = draw(120), draw(3000)
    narrow = bootstrap_interval(*many, expected_calibration_error, resamples=200)
    wide = bootstrap_interval(*few, expected_calibration_error, resamples=200)
    assert wide.high - wide.low > 2 * (narrow.high - narrow.low)
    assert wide.high > 0.05  # a calibrated model's ECE on 120 items can read well above zero


def test_the_ece_a_calibrated_answer_reads_on_few_items_is_what_such_an_answer_shows() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 1.5, size=(120, 7))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    mean, interval = ece_if_calibrated(p, draws=300)
    # Labels drawn from the answers themselves (calibrated by construction) read ECEs around that mean.
    observed = [expected_calibration_error(p, np.array([rng.choice(7, p=q) for q in p])) for _ in range(100)]
    assert interval.low < mean < interval.high and 0.05 < mean < 0.2
    assert abs(np.mean(observed) - mean) < 0.015
    # More items, less chance error; an overconfident answer reads well above it.
    assert ece_if_calibrated(np.tile(p, (20, 1)), draws=100)[0] < mean / 2
    sharp = np.eye(7)[p.argmax(axis=1)] * 0.9 + 0.1 / 7
    truth = np.array([rng.choice(7, p=q) for q in p])
    assert expected_calibration_error(sharp, truth) > ece_if_calibrated(sharp, draws=100)[1].high
