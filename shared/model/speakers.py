"""Telling speakers apart: each utterance's voice embedded, an utterance that changes voice cut where it
changes, and the whole clustered into people, labelled S1, S2, … in the order they first speak.

Agglomerative clustering with average linkage on cosine distance: two groups of utterances merge while the
mean distance between them stays under `threshold` (chosen on conversations of speakers other than those it
is scored on, `training.diarization_eval`), or until `speakers` groups remain when the caller knows how many
people talk. An utterance too short to carry a voice (under `min_seconds`) does not vote in the clustering;
it takes the label of the nearest group of longer ones.

Whisper cuts speech at its pauses and sentences, not at its speakers: a quick reply can land in the segment
of the question, and pauses under the VAD's two seconds leave several turns in one segment. Inside an
utterance the voice is compared across each word gap: the last 1.6 s partial before it against the first
after it (`speaker_encoder.partial_embeddings`; partials of silence left out), and it is cut at the gaps
where the two differ by more than `CHANGE_DISTANCE`. On two RAVDESS takes joined, one actor's two takes
(often of two emotions) lay 0.33 apart at the median and two actors' 0.45: a distance alone would cut a
large share of one person's utterances. So a cut is only a proposal: the stretches between cuts are
clustered with the other utterances, weighing by their seconds of words, and a cut stays only where the
stretches on its two sides come out as different people.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

import numpy as np
import numpy.typing as npt
from sklearn.cluster import AgglomerativeClustering

from emotion_contract.events import Span
from shared.model.speaker_encoder import (
    HOP,
    PARTIAL_FRAMES,
    SAMPLE_RATE,
    SpeakerEncoder,
    embed_speech,
    normed_mean,
    partial_embeddings,
)
from shared.transcription import Word

DEFAULT_THRESHOLD: Final = 0.4
MIN_SECONDS: Final = 1.3
CHANGE_DISTANCE: Final = 0.35
SILENT_SHARE: Final = 0.1
CUT_TOLERANCE_S: Final = 0.25
"""A partial that reaches this far over a word gap still counts as on its side (words are not cut sharp)."""
PARTIAL_S: Final = PARTIAL_FRAMES * HOP / SAMPLE_RATE


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


@dataclass(frozen=True)
class _Piece:
    """An utterance, or a stretch of it between proposed cuts, with its voice's embedding."""

    origin: int
    start: float
    end: float
    words: tuple[Word, ...]
    embedding: npt.NDArray[np.float32]

    @property
    def spoken_s(self) -> float:
        """Seconds of words in it (its length where its words are not known): what its voice is made of."""
        if not self.words:
            return self.end - self.start
        return sum(max(0.0, w.end - w.start) for w in self.words)


def _gap(words: Sequence[Word], k: int) -> float:
    """The middle of the gap before word `k`."""
    return (words[k - 1].end + words[k].start) / 2


def voiced(audio: npt.NDArray[np.float32], starts_s: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Per partial of `audio` (starting at `starts_s`, seconds in it): does it hold speech? Whisper's
    utterances keep pauses of up to two seconds, and a partial of silence is nobody's voice: a partial far
    quieter than the utterance's loudest (under `SILENT_SHARE` of its RMS) is left out."""
    size = PARTIAL_FRAMES * HOP
    rms = np.array(
        [
            float(np.sqrt(np.mean(np.square(audio[a : a + size], dtype=np.float64))))
            if a < len(audio)
            else 0.0
            for a in (starts_s * SAMPLE_RATE).astype(int)
        ]
    )
    loudest = rms.max(initial=0.0)
    return rms >= SILENT_SHARE * loudest if loudest > 0 else np.ones(len(rms), dtype=bool)


def change_points(
    words: Sequence[Word],
    partials: npt.NDArray[np.float32],
    starts_s: npt.NDArray[np.float64],
    change_distance: float = CHANGE_DISTANCE,
) -> list[int]:
    """The words (indices) before which the voice changes: at each word gap, the last partial that ends
    before it against the first that starts after it (L2-normed, times in the file, speech only); where
    they differ by more than `change_distance`, and of two such gaps closer than a partial, the larger."""
    ends = starts_s + PARTIAL_S
    found = []
    for k in range(1, len(words)):
        cut = _gap(words, k)
        before = np.flatnonzero(ends <= cut + CUT_TOLERANCE_S)
        after = np.flatnonzero(starts_s >= cut - CUT_TOLERANCE_S)
        if len(before) and len(after):
            distance = 1.0 - float(partials[before[-1]] @ partials[after[0]])
            if distance > change_distance:
                found.append((distance, k, cut))
    chosen: list[tuple[int, float]] = []
    for _, k, cut in sorted(found, reverse=True):
        if all(abs(cut - other) >= PARTIAL_S for _, other in chosen):
            chosen.append((k, cut))
    return sorted(k for k, _ in chosen)


class Speakers:
    """Who speaks each utterance of a file. Holds the voice encoder: create it once per process."""

    def __init__(
        self,
        encoder: SpeakerEncoder,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        change_distance: float = CHANGE_DISTANCE,
    ) -> None:
        self.encoder = encoder
        self.threshold = threshold
        self.change_distance = change_distance

    def label(
        self,
        audio: npt.NDArray[np.float32],
        spans: Sequence[Span],
        words: Sequence[Sequence[Word]] | None = None,
        *,
        speakers: int | None = None,
    ) -> list[Span]:
        """`spans` (times in `audio`, 16 kHz mono) with their `speaker`, renumbered; an utterance whose voice
        changes is two (or more) utterances, cut at the word gap of the change (only where its `words`,
        with their times in the file, are given). `speakers`: how many people talk, when known."""
        if words is not None and len(words) != len(spans):
            raise ValueError(f"{len(words)} word lists for {len(spans)} spans")
        pieces: list[_Piece] = []
        for origin, span in enumerate(spans):
            pieces += self._pieces(audio, origin, span, tuple(words[origin]) if words is not None else ())
        if not pieces:
            return []
        labels = cluster_speakers(
            np.stack([p.embedding for p in pieces]),
            [p.spoken_s for p in pieces],
            speakers=speakers,
            threshold=self.threshold,
        )
        kept: list[tuple[_Piece, str]] = []
        for piece, label in zip(pieces, labels, strict=True):
            if kept and kept[-1][0].origin == piece.origin and kept[-1][1] == label:
                last = kept[-1][0]  # one person on both sides of the cut: no cut
                kept[-1] = (replace(last, end=piece.end, words=last.words + piece.words), label)
            else:
                kept.append((piece, label))
        return [self._span(spans[piece.origin], piece, label, i) for i, (piece, label) in enumerate(kept)]

    def _pieces(
        self, audio: npt.NDArray[np.float32], origin: int, span: Span, words: tuple[Word, ...]
    ) -> list[_Piece]:
        """The span cut at each change of voice found in it, each stretch with its voice's embedding."""
        clip = self._clip(audio, span.start, span.end)
        partials, starts = partial_embeddings(self.encoder, clip)
        speech = voiced(clip, starts)
        partials, starts = partials[speech], starts[speech] + span.start
        whole = _Piece(origin, span.start, span.end, words, normed_mean(partials))
        cuts = change_points(words, partials, starts, self.change_distance)
        if not cuts:
            return [whole]
        pieces = []
        for first, last in zip([0, *cuts], [*cuts, len(words)], strict=True):
            start = span.start if first == 0 else words[first].start
            end = span.end if last == len(words) else words[last - 1].end
            inside = (starts >= start - CUT_TOLERANCE_S) & (starts + PARTIAL_S <= end + CUT_TOLERANCE_S)
            embedding = (
                normed_mean(partials[inside])
                if inside.any()
                else embed_speech(self.encoder, self._clip(audio, start, end))
            )
            pieces.append(_Piece(origin, start, max(start, end), words[first:last], embedding))
        return pieces

    @staticmethod
    def _clip(audio: npt.NDArray[np.float32], start_s: float, end_s: float) -> npt.NDArray[np.float32]:
        first = min(int(start_s * SAMPLE_RATE), max(0, len(audio) - HOP))
        return audio[first : max(int(end_s * SAMPLE_RATE), first + HOP)]

    @staticmethod
    def _span(span: Span, piece: _Piece, label: str, index: int) -> Span:
        if piece.start == span.start and piece.end == span.end:
            return span.model_copy(update={"index": index, "speaker": label})
        return Span(
            index=index,
            start=round(piece.start, 3),
            end=round(piece.end, 3),
            text="".join(w.word for w in piece.words).strip(),
            speaker=label,
        )
