"""The face-quality signal: real faces from a real talking video, blurred and shrunk as video does."""

from pathlib import Path

import numpy as np
import pytest
from skimage.filters import gaussian
from skimage.transform import resize

from shared.media.frames import sample_stills
from shared.model.face_detection import FaceTracker, crop_face
from shared.model.face_quality import FULL_SIDE_PX, MIN_SIDE_PX, face_quality, sharpness

TALKING = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "talking" / "vr_face_1.mp4"


@pytest.fixture(scope="module")
def faces() -> list[tuple[np.ndarray, int]]:
    """(grey face region at source resolution, side) of a few pictures of a real talking video."""
    if not TALKING.is_file():
        pytest.skip(f"{TALKING} is not there (shared data is laid beside the repository)")
    tracker, out = FaceTracker(), []
    for time_s, grey in sample_stills(TALKING, interval_s=1.0):
        if (box := tracker.find(grey, time_s)) is not None:
            out.append(
                (grey[box.y : box.y + box.height, box.x : box.x + box.width], max(box.width, box.height))
            )
    assert len(out) >= 4
    return out


def _blurred(region: np.ndarray, sigma_at_48: float) -> np.ndarray:
    sigma = sigma_at_48 * region.shape[0] / 48  # the same blur as seen in the 48-pixel crop
    smooth = gaussian(region, sigma=sigma, preserve_range=True)  # type: ignore[no-untyped-call]
    return np.asarray(np.clip(smooth, 0, 255), dtype=np.uint8)


def test_a_sharp_large_face_counts_in_full(faces: list[tuple[np.ndarray, int]]) -> None:
    for region, side in faces:
        assert side >= FULL_SIDE_PX
        assert face_quality(crop_face(region, (0, 0, *region.shape[::-1])), side) == pytest.approx(1.0)


def test_a_blurred_face_counts_for_less_the_more_it_is_blurred(faces: list[tuple[np.ndarray, int]]) -> None:
    for region, side in faces:
        full = (0, 0, region.shape[1], region.shape[0])
        qualities = [face_quality(crop_face(_blurred(region, s), full), side) for s in (0.0, 1.0, 1.5, 3.0)]
        assert qualities[0] == pytest.approx(1.0)
        assert qualities[0] > qualities[1] > qualities[2] >= qualities[3]
        assert qualities[3] == 0.0


def test_a_tiny_face_counts_for_little_or_nothing(faces: list[tuple[np.ndarray, int]]) -> None:
    region, _ = faces[0]
    for side, expected in ((MIN_SIDE_PX / 2, 0.0), (32, (32 - MIN_SIDE_PX) / (FULL_SIDE_PX - MIN_SIDE_PX))):
        shrunk = resize(region, (int(side), int(side)), preserve_range=True)  # type: ignore[no-untyped-call]
        small = np.asarray(shrunk, dtype=np.uint8)
        crop = crop_face(small, (0, 0, int(side), int(side)))
        assert face_quality(crop, side) <= expected + 1e-6


def test_sharpness_does_not_depend_on_brightness_or_contrast() -> None:
    rng = np.random.default_rng(0)
    crop = rng.integers(60, 200, (48, 48)).astype(np.uint8)
    dimmer = (crop.astype(np.float64) * 0.5 + 10).astype(np.uint8)
    assert sharpness(dimmer) == pytest.approx(sharpness(crop), rel=0.05)
