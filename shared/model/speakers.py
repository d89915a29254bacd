"""Telling speakers apart: the utterances' voice embeddings clustered into people, labelled S1, S2, … in the
order they first speak.

Agglomerative clustering with average linkage on cosine distance: two groups of utterances merge while the
mean distance between them stays under `threshold` (chosen on conversations of speakers other than those it
is scored on, `training.diarization_eval`), or until `speakers` groups remain when the caller knows how many
people talk. An utterance too short to carry a voice (under `min_seconds`) does not vote in the clustering;
it takes the label of the nearest group of longer ones.
"""

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from sklearn.cluster import AgglomerativeClustering

DEFAULT_THRESHOLD: Final = 0.4
MIN_SECONDS: Final = 1.3


def speaker_label(index: int) -> str:
    return f"S{index + 1}"


def cluster_speakers(
    embeddings: npt.NDArray[np.float32],
    durations_s: Sequence[float] | None = None,
    *,
    speakers: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    min_seconds: float = MIN_SECONDS,
) -> list[str]:
    """A label per utterance ("S1", "S2", … by first appearance) for (n, d) L2-normed voice embeddings.

    `speakers`: the number of people, when known (at most n); else estimated with `threshold`."""
    n = len(embeddings)
    if speakers is not None and speakers < 1:
        raise ValueError(f"speakers must be at least 1, got {speakers}")
    if n == 0:
        return []
    durations = np.full(n, np.inf) if durations_s is None else np.asarray(durations_s, dtype=np.float64)
    if durations.shape != (n,):
        raise ValueError(f"{n} embeddings but {durations.shape} durations")
    voters = np.flatnonzero(durations >= min_seconds)
    if len(voters) == 0:  # all short: let them all vote rather than say nothing
        voters = np.arange(n)
    groups = _groups(embeddings[voters], speakers, threshold)
    centroids = np.stack([embeddings[voters][groups == g].mean(axis=0) for g in range(groups.max() + 1)])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    assigned = (embeddings @ centroids.T).argmax(axis=1)
    assigned[voters] = groups
    return _in_order_of_appearance(assigned)


def _groups(
    embeddings: npt.NDArray[np.float32], speakers: int | None, threshold: float
) -> npt.NDArray[np.int64]:
    if len(embeddings) == 1 or speakers == 1:
        return np.zeros(len(embeddings), dtype=np.int64)
    if speakers is not None:
        clustering = AgglomerativeClustering(
            n_clusters=min(speakers, len(embeddings)), metric="cosine", linkage="average"
        )
    else:
        clustering = AgglomerativeClustering(
            n_clusters=None, distance_threshold=threshold, metric="cosine", linkage="average"
        )
    return np.asarray(clustering.fit_predict(embeddings), dtype=np.int64)


def _in_order_of_appearance(groups: npt.NDArray[np.int64]) -> list[str]:
    order: dict[int, int] = {}
    for g in groups.tolist():
        order.setdefault(g, len(order))
    return [speaker_label(order[g]) for g in groups.tolist()]
