"""The facial-expression network and its training data handling (training.face)."""

import numpy as np
import torch

from shared.model.face import FaceExpressionNet, faces_tensor
from training.face import augment, split_faces


def test_validation_split_is_stratified_and_the_same_every_time() -> None:
    labels = np.repeat(np.arange(7), [50, 10, 40, 70, 50, 40, 30]).astype(np.int64)
    images = np.random.default_rng(0).integers(0, 255, (len(labels), 48, 48), dtype=np.uint8)
    first, again = split_faces(images, labels), split_faces(images, labels)
    assert np.array_equal(first.val_labels, again.val_labels)
    assert np.array_equal(first.val_images, again.val_images)
    assert np.bincount(first.val_labels, minlength=7).tolist() == [5, 1, 4, 7, 5, 4, 3]
    assert len(first.train_labels) + len(first.val_labels) == len(labels)


def test_augmented_faces_are_standardised_and_vary() -> None:
    faces = torch.rand(8, 1, 48, 48)
    out = augment(faces.clone(), torch.Generator().manual_seed(0))
    assert out.shape == faces.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), torch.zeros(8), atol=1e-4, rtol=0)
    assert not torch.allclose(out, augment(faces.clone(), torch.Generator().manual_seed(1)))


def test_crops_are_standardised_so_brightness_and_contrast_do_not_matter() -> None:
    net = FaceExpressionNet().eval()
    crop = np.random.default_rng(0).integers(40, 200, (1, 48, 48)).astype(np.uint8)
    brighter = np.clip(crop.astype(np.int64) * 1.1 + 10, 0, 255).astype(np.uint8)
    with torch.inference_mode():
        a, b = net.probabilities(faces_tensor(crop)), net.probabilities(faces_tensor(brighter))
    torch.testing.assert_close(a.sum(-1), torch.ones(1))
    torch.testing.assert_close(a, b, atol=0.02, rtol=0)
