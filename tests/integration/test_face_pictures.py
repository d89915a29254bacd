"""The face network is fine-tuned on the pictures the video encoder reads: `training.face_clips` frames each
face of a kit clip as the encoder does, so its encoder framing gives the encoder's own answers."""

from pathlib import Path

import numpy as np
import pytest

from shared.feature_matrix import to_array
from shared.model.bundle import LocalBundle
from shared.model.face_detection import FACE_MARGIN, FACE_SHIFT
from shared.model.inference import VideoFeaturizer
from shared.stages import track_video_file
from tests.bundle_fixtures import bundle, bundle_dir
from training.eval_av import AvClip
from training.face_clips import MARGINS, SHIFTS, clip_pictures, encoder_framings

__all__ = ["bundle", "bundle_dir"]
CLIP = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "av"
    / "javanese"
    / "clips"
    / "03-02-01_01.mp4"
)


def test_the_pictures_fine_tuned_on_are_the_ones_the_encoder_reads(bundle: LocalBundle) -> None:
    if not CLIP.is_file():
        pytest.skip(f"{CLIP} is not there (shared data is laid beside the repository)")
    featurizer = VideoFeaturizer(bundle)
    track = track_video_file(CLIP, featurizer=featurizer, max_duration_s=60, interval_s=0.25)
    framings = encoder_framings(AvClip(CLIP, "03", 0), rate=4.0)
    assert framings.shape[0] == len(MARGINS) * len(SHIFTS) and framings.shape[1] == len(track.face_times) > 4
    pictures = clip_pictures([framings], [AvClip(CLIP, "03", 0)])
    assert pictures.framings.shape[1] == framings.shape[1]
    assert np.array_equal(
        pictures.encoder, framings[MARGINS.index(FACE_MARGIN) * len(SHIFTS) + SHIFTS.index(FACE_SHIFT)]
    )
    assert track.face_emotions is not None
    np.testing.assert_allclose(
        featurizer.face_emotions(pictures.encoder), to_array(track.face_emotions), atol=1e-5
    )
