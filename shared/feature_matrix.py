"""numpy arrays in and out of the events' `FeatureMatrix` (little-endian float32, row-major, base64)."""

import base64

import numpy as np
import numpy.typing as npt

from emotion_contract.events import FeatureMatrix


def to_matrix(array: npt.NDArray[np.floating]) -> FeatureMatrix:
    matrix = np.ascontiguousarray(array, dtype="<f4")
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-d array, got shape {matrix.shape}")
    return FeatureMatrix(
        rows=matrix.shape[0], cols=matrix.shape[1], data=base64.b64encode(matrix.tobytes()).decode()
    )


def to_array(matrix: FeatureMatrix) -> npt.NDArray[np.float32]:
    flat = np.frombuffer(base64.b64decode(matrix.data), dtype="<f4")
    return flat.reshape(matrix.rows, matrix.cols).astype(np.float32)
