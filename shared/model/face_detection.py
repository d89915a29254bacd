"""Finding the face in a grey picture (scikit-image's LBP cascade), following it, and cropping it for the
expression network (`shared.model.face`)."""

from functools import cache
from typing import Final, NamedTuple

import numpy as np

from shared.media.frames import Uint8Array


class FaceBox(NamedTuple):
    x: int
    y: int
    width: int
    height: int


@cache
def _face_cascade() -> object:
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    return Cascade(lbp_frontal_face_cascade_filename())  # type: ignore[no-untyped-call]


def detect_faces(gray: Uint8Array, *, min_fraction: float = 1 / 5) -> list[FaceBox]:
    """Frontal faces no smaller than `min_fraction` of the shorter image side, largest first.

    The size floor is what keeps the LBP cascade fast (~20 ms for a 480×480 frame on one core): a
    talking-head video's face is large, and the many small windows are where the cascade spends its time
    and finds its false positives. Tuned on ../shared/data/talking: a face in each of the 309 frames taken
    every 0.1 s from the five frontal clips (a coarser scale step of 1.15 missed some).
    """
    if gray.ndim != 2:
        raise ValueError(f"expected a 2-d grey image, got shape {gray.shape}")
    side = min(gray.shape)
    return _detect(gray, min_side=max(24, int(side * min_fraction)), max_side=side)


def _detect(gray: Uint8Array, *, min_side: int, max_side: int) -> list[FaceBox]:
    """Faces whose side lies in [min_side, max_side], largest first, one box per face."""
    max_side = min(max_side, *gray.shape)
    if min_side > max_side:
        return []
    detections = _face_cascade().detect_multi_scale(  # type: ignore[attr-defined]
        img=gray,
        scale_factor=1.1,
        step_ratio=1.0,
        min_size=(min_side, min_side),
        max_size=(max_side, max_side),
        min_neighbor_number=2,
    )
    boxes = [FaceBox(int(d["c"]), int(d["r"]), int(d["width"]), int(d["height"])) for d in detections]
    kept: list[FaceBox] = []
    for box in sorted(boxes, key=lambda box: box.width * box.height, reverse=True):
        if not any(_centre_inside(box, larger) for larger in kept):
            kept.append(box)
    return kept


class FaceTracker:
    """Follows the largest face from one picture of a video to the next.

    Where the face was a moment ago, it is looked for only around its last box and near its last size, which
    costs a few milliseconds instead of a whole-frame search; the whole frame is searched when the face is
    lost, and every `refresh_s` anyway, so a false detection or a second, larger face is not followed forever.
    """

    def __init__(self, *, refresh_s: float = 5.0, min_fraction: float = 1 / 5) -> None:
        self.refresh_s = refresh_s
        self.min_fraction = min_fraction
        self._box: FaceBox | None = None
        self._searched_at = -float("inf")

    def find(self, gray: Uint8Array, time_s: float) -> FaceBox | None:
        if self._box is not None and time_s - self._searched_at < self.refresh_s:
            self._box = self._near(gray, self._box)
        else:
            self._box = None
        if self._box is None:
            faces = detect_faces(gray, min_fraction=self.min_fraction)
            self._box = faces[0] if faces else None
            self._searched_at = time_s
        return self._box

    @staticmethod
    def _near(gray: Uint8Array, box: FaceBox) -> FaceBox | None:
        side = max(box.width, box.height)
        margin = side // 2
        top, left = max(0, box.y - margin), max(0, box.x - margin)
        region = gray[top : box.y + box.height + margin, left : box.x + box.width + margin]
        found = _detect(region, min_side=max(24, int(side / 1.3)), max_side=int(side * 1.3) + 1)
        if not found:
            return None
        x, y, width, height = found[0]
        return FaceBox(x + left, y + top, width, height)


def _centre_inside(box: FaceBox, other: FaceBox) -> bool:
    """The cascade reports one face at neighbouring scales as overlapping boxes; keep the largest."""
    centre_x, centre_y = box.x + box.width / 2, box.y + box.height / 2
    return other.x <= centre_x <= other.x + other.width and other.y <= centre_y <= other.y + other.height


def crop_face(gray: Uint8Array, box: FaceBox | tuple[int, int, int, int], size: int = 48) -> Uint8Array:
    """The box's pixels resized to (size, size) uint8, as the FER network takes them."""
    from skimage.transform import resize

    x, y, width, height = box
    crop = gray[max(0, y) : y + height, max(0, x) : x + width]
    if crop.size == 0:
        raise ValueError(f"box {tuple(box)} lies outside the {gray.shape} image")
    scaled = resize(crop, (size, size), anti_aliasing=True, preserve_range=True)  # type: ignore[no-untyped-call]
    return np.asarray(np.clip(np.rint(scaled), 0, 255), dtype=np.uint8)


# The detector's box runs from the eyebrows to the lips; FER2013's faces show the forehead and the chin.
# Chosen on the kit's real clips by actor folds (`training.face_video`): margin 1.2 and the centre 0.1 box
# lower gave clip-level weighted F1 0.36 against 0.24 for the bare box (the network's "surprise" for 78 of
# 120 clips fell to 50); wider (1.4, 1.6) or lower (0.15, 0.2) framings scored 0.25-0.33.
FACE_MARGIN: Final = 1.2
FACE_SHIFT: Final = 0.1


def frame_face(
    gray: Uint8Array,
    box: FaceBox,
    *,
    margin: float = FACE_MARGIN,
    shift: float = FACE_SHIFT,
    size: int = 48,
) -> Uint8Array:
    """The face as the expression network learnt it: a square `margin` boxes wide around the detector's box,
    its centre `shift` boxes lower, resized to (size, size); edge-padded where it leaves the picture."""
    side = max(box.width, box.height)
    square = max(1, round(side * margin))
    left = round(box.x + box.width / 2 - square / 2)
    top = round(box.y + box.height / 2 + shift * side - square / 2)
    height, width = gray.shape
    pad = max(0, -left, -top, left + square - width, top + square - height)
    if pad:
        gray = np.pad(gray, pad, mode="edge")
    return crop_face(gray, (left + pad, top + pad, square, square), size)
