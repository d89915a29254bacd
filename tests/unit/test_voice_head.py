"""The voice head's logistic regression: trained on standardised pooled states, masked, stored whole."""

from pathlib import Path
from typing import cast

import numpy as np
import torch

from emotion_contract.labels import EMOTIONS
from shared.model.bundle import load_state, save_state
from shared.model.voice import MARGINS_S, POOLED_DIM, VoiceHead
from training.voice import train_linear


def pooled_rows(rng: np.random.Generator, per_class: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Rows of Whisper-like scale (an offset of 3, spread 0.05), each class shifted along its own 100 axes."""
    dim = POOLED_DIM * len(MARGINS_S)
    labels = np.repeat(np.arange(len(EMOTIONS)), per_class)
    x = 3.0 + 0.05 * rng.standard_normal((len(labels), dim))
    for row, label in enumerate(labels):
        x[row, label * 100 : (label + 1) * 100] += 0.05
    return x.astype(np.float32), labels.astype(np.int64)


def test_the_linear_head_learns_standardised_features_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = pooled_rows(rng)
    masks = np.ones((len(y), len(EMOTIONS)), dtype=bool)
    head = train_linear(x, y, masks, MARGINS_S, c=0.5)
    assert np.allclose(cast(torch.Tensor, head.input_mean).numpy(), x.mean(axis=0), atol=1e-5)
    test_x, test_y = pooled_rows(rng, per_class=4)
    with torch.inference_mode():
        predicted = head(torch.from_numpy(test_x)).argmax(-1).numpy()
    assert (predicted == test_y).mean() >= 0.9
    # The shipped head is this design: a default VoiceHead loads it exactly (float32 kept).
    save_state(head, tmp_path / "voice.safetensors", half=False)
    loaded = VoiceHead()
    load_state(loaded, tmp_path / "voice.safetensors")
    with torch.inference_mode():
        np.testing.assert_allclose(
            loaded(torch.from_numpy(test_x)), head(torch.from_numpy(test_x)), atol=1e-6
        )
    # Deterministic: full-batch L-BFGS from zeros, no seed.
    again = train_linear(x, y, masks, MARGINS_S, c=0.5)
    torch.testing.assert_close(again.nets[0].weight, head.nets[0].weight)


def test_a_class_a_corpus_cannot_label_is_masked_out_of_its_rows() -> None:
    rng = np.random.default_rng(1)
    x, y = pooled_rows(rng)
    surprise = EMOTIONS.index("surprise")
    # A second corpus without surprise whose rows sit where surprise does: unmasked, they would teach the
    # head that surprise's region is something else; masked, they only compete among their own classes.
    other = x[y == surprise].copy()
    other_y = np.full(len(other), EMOTIONS.index("neutral"), dtype=np.int64)
    xs, ys = np.concatenate([x, other]), np.concatenate([y, other_y])
    masks = np.ones((len(ys), len(EMOTIONS)), dtype=bool)
    masks[len(y) :, surprise] = False
    masked = train_linear(xs, ys, masks, MARGINS_S, c=0.5)
    unmasked = train_linear(xs, ys, np.ones_like(masks), MARGINS_S, c=0.5)
    probe = torch.from_numpy(x[y == surprise])
    with torch.inference_mode():
        p_masked = masked(probe).exp()[:, surprise].mean()
        p_unmasked = unmasked(probe).exp()[:, surprise].mean()
    assert p_masked > 0.5 > p_unmasked
