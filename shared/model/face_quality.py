"""How far a picture of a face can be trusted, in [0, 1]: its size in the source picture and its sharpness.

The expression network reads 48×48 grey faces. A face much smaller than that in the video is upscaled into
mush, and a blurred one (motion, focus, heavy compression) has lost the fine lines the network reads; both
make its answer noise that still looks confident. Fusion multiplies the face's weight by the mean quality of
the pictures an utterance overlaps (`shared.model.pooling.pool`'s `scales`), so a poor face counts for less
and an absent one for nothing. The LBP cascade that finds the faces is frontal-only, so a face it finds is
roughly frontal: pose is not scored separately.

Sharpness is the variance of the Laplacian of the crop standardised to zero mean and unit variance (so it
does not depend on brightness or contrast). Measured here: FER2013's training faces 0.48-1.53 (10th-90th
percentile), the kit's real video crops 0.26-0.58, FER faces blurred with a Gaussian of σ 1 px 0.04-0.11,
of σ 2 px 0.006-0.017.
"""

from typing import Final

import numpy as np
import numpy.typing as npt

MIN_SIDE_PX: Final = 16.0  # a face this small in the source picture tells nothing
FULL_SIDE_PX: Final = 48.0  # the network's own size: no upscaling
BLURRED: Final = 0.03  # sharpness of a face blurred past reading (σ ≈ 1.5 px at 48 px)
SHARP: Final = 0.2  # sharpness from which a face counts in full (below every real video crop seen here)


def sharpness(crop: npt.NDArray[np.uint8]) -> float:
    """Variance of the Laplacian of the standardised (H, W) grey crop."""
    x = crop.astype(np.float64)
    x = (x - x.mean()) / max(float(x.std()), 1e-3)
    edged = np.pad(x, 1, mode="symmetric")  # the border scipy.ndimage.laplace gives
    laplacian = edged[:-2, 1:-1] + edged[2:, 1:-1] + edged[1:-1, :-2] + edged[1:-1, 2:] - 4 * x
    return float(laplacian.var())


def _ramp(value: float, low: float, high: float) -> float:
    return float(np.clip((value - low) / (high - low), 0.0, 1.0))


def face_quality(crop: npt.NDArray[np.uint8], side_px: float) -> float:
    """The picture's weight: 0 for a face too small or too blurred to read, 1 for a large, sharp one."""
    return _ramp(side_px, MIN_SIDE_PX, FULL_SIDE_PX) * _ramp(sharpness(crop), BLURRED, SHARP)
