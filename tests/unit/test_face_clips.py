"""Fine-tuning the face network on the kit's clips' faces (training.face_clips): the pictures, the video-like
loss of resolution, what the encoder reads, the temperature, and that fine-tuning moves the network toward
the clips' labels."""

from pathlib import Path

import numpy as np
import torch

from emotion_contract.labels import EMOTIONS
from shared.model.bundle import load_state
from shared.model.face import FaceExpressionNet
from training.eval_av import AvClip
from training.face import DEFAULT_FACE_WEIGHTS, face_logits
from training.face_clips import (
    MARGINS,
    SHIFTS,
    Recipe,
    clip_distributions,
    clip_pictures,
    encoder_rows,
    fine_tune,
    fit_clip_temperature,
    lower_resolution,
    tuned_checkpoint,
)
from training.face_video import WIDE_PIXELS, ClipFaces


def _faces(k: int, seed: int) -> ClipFaces:
    wide = np.random.default_rng(seed).integers(0, 255, (k, WIDE_PIXELS, WIDE_PIXELS), dtype=np.uint8)
    return ClipFaces(np.arange(k, dtype=np.float64) * 0.25, wide, np.full(k, 80.0), samples=k)


def _clips(*labels: str) -> list[AvClip]:
    return [AvClip(Path(f"c{i}.mp4"), f"0{i + 1}", EMOTIONS.index(label)) for i, label in enumerate(labels)]


def test_every_picture_is_framed_each_way_and_keeps_its_clip_and_label() -> None:
    clips = _clips("joy", "anger", "fear")
    pictures = clip_pictures([_faces(3, 0), _faces(0, 1), _faces(4, 2)], clips)
    assert pictures.framings.shape == (len(MARGINS) * len(SHIFTS), 7, 48, 48)
    assert pictures.encoder.shape == (7, 48, 48)
    assert pictures.clip.tolist() == [0, 0, 0, 2, 2, 2, 2]  # the clip without a face gives nothing
    assert pictures.labels.tolist() == [EMOTIONS.index("joy")] * 3 + [EMOTIONS.index("fear")] * 4
    assert pictures.order.tolist() == [0, 1, 2, 0, 1, 2, 3]
    # The encoder's own framing is one of those drawn from.
    assert any(np.array_equal(pictures.encoder, f) for f in pictures.framings)


def test_the_encoder_reads_every_second_picture_of_the_chosen_clips() -> None:
    pictures = clip_pictures([_faces(5, 0), _faces(4, 1)], _clips("joy", "anger"))
    assert encoder_rows(pictures, {1}).tolist() == [5, 7]
    assert encoder_rows(pictures, {0, 1}).tolist() == [0, 2, 4, 5, 7]


def test_lower_resolution_removes_fine_detail_from_the_share_it_picks() -> None:
    faces = torch.rand(6, 1, 48, 48)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(lower_resolution(faces, generator, share=0.0), faces)
    smooth = lower_resolution(faces, generator, share=1.0)

    def detail(x: torch.Tensor) -> torch.Tensor:
        return (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(1, 2, 3))

    assert (detail(smooth) < 0.7 * detail(faces)).all()


def test_a_clip_reads_as_the_mean_of_its_pictures_at_the_temperature() -> None:
    logits = torch.tensor([[2.0, 0, 0, 0, 0, 0, 0], [0, 2.0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 4.0]])
    out = clip_distributions(logits, np.array([0, 0, 2]), temperature=2.0, n_clips=3)
    expected = (logits[:2] / 2).softmax(-1).mean(0).double().numpy()
    np.testing.assert_allclose(out[0], expected, atol=1e-6)
    assert np.isnan(out[1]).all() and out[2].argmax() == 6


def test_fine_tuning_moves_fer_network_toward_the_clips_labels() -> None:
    clips = _clips("fear", "fear")
    pictures = clip_pictures([_faces(6, 0), _faces(6, 1)], clips)
    fer = np.random.default_rng(2).integers(0, 255, (16, 48, 48), dtype=np.uint8)
    fer_labels = np.full(16, EMOTIONS.index("fear"), dtype=np.int64)
    before = FaceExpressionNet()
    load_state(before, DEFAULT_FACE_WEIGHTS)
    recipe = Recipe(epochs=4, batch=8, fer_batch=8, lr=0.02)
    tuned = fine_tune(DEFAULT_FACE_WEIGHTS, pictures, np.arange(12), fer, fer_labels, recipe)
    fear = EMOTIONS.index("fear")
    p_before = face_logits(before, pictures.encoder).softmax(-1)[:, fear].mean()
    p_after = face_logits(tuned, pictures.encoder).softmax(-1)[:, fear].mean()
    assert p_after > p_before + 0.1
    assert float(tuned.temperature) == 1.0  # type: ignore[arg-type]


def test_the_temperature_is_fitted_where_the_face_is_read_on_the_mean_of_a_clips_pictures() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 40)
    clip = np.repeat(np.arange(40), 5)
    # Each picture leans to its clip's label, more so together: sharp pictures, right on average.
    logits = torch.from_numpy(rng.normal(0, 1.5, (200, 7))).float()
    logits[np.arange(200), labels[clip]] += 2.0
    t = fit_clip_temperature(logits, clip, labels, 40)
    nll = [
        -np.log(clip_distributions(logits, clip, x, 40)[np.arange(40), labels]).mean()
        for x in (t * 0.8, t, t * 1.25)
    ]
    assert nll[1] <= min(nll[0], nll[2])


def test_a_fine_tuning_is_kept_and_read_again_by_a_recipe_that_moves_back_otherwise(tmp_path: Path) -> None:
    clips = _clips("fear", "joy")
    pictures = clip_pictures([_faces(4, 0), _faces(4, 1)], clips)
    fer = np.random.default_rng(2).integers(0, 255, (16, 48, 48), dtype=np.uint8)
    fer_labels = np.arange(16, dtype=np.int64) % 7
    rows = np.arange(8)
    recipe = Recipe(epochs=2, batch=4, fer_batch=4, lr=0.02, keep_base=0.0)
    checkpoint = tuned_checkpoint(tmp_path, DEFAULT_FACE_WEIGHTS, pictures, rows, recipe)
    tuned = fine_tune(DEFAULT_FACE_WEIGHTS, pictures, rows, fer, fer_labels, recipe, checkpoint)
    assert checkpoint.is_file()
    halfway = recipe.model_copy(update={"keep_base": 0.5})
    # Only the move back differs: the same fine-tuning, read, not trained again.
    assert tuned_checkpoint(tmp_path, DEFAULT_FACE_WEIGHTS, pictures, rows, halfway) == checkpoint
    assert tuned_checkpoint(tmp_path, DEFAULT_FACE_WEIGHTS, pictures, rows[:4], halfway) != checkpoint
    assert (
        tuned_checkpoint(
            tmp_path, DEFAULT_FACE_WEIGHTS, pictures, rows, recipe.model_copy(update={"lr": 0.01})
        )
        != checkpoint
    )
    mixed = fine_tune(DEFAULT_FACE_WEIGHTS, pictures, rows, fer, fer_labels, halfway, checkpoint)
    base = FaceExpressionNet()
    load_state(base, DEFAULT_FACE_WEIGHTS)
    name = next(n for n, v in tuned.state_dict().items() if v.is_floating_point() and v.ndim == 4)
    expected = 0.5 * tuned.state_dict()[name] + 0.5 * base.state_dict()[name]
    torch.testing.assert_close(mixed.state_dict()[name], expected)
