"""Speakers told apart: the voice encoder's features as librosa computes them, and the clustering's rules."""

from pathlib import Path

import numpy as np
import pytest

from shared.model.speaker_encoder import mel_frames, partial_starts
from shared.model.speakers import change_points, cluster_speakers, voiced
from shared.transcription import Word

MEL_REFERENCE = Path(__file__).parents[1] / "data" / "librosa-mel-chirp.npz"


def chirp() -> np.ndarray:
    """The signal tests/data/librosa-mel-chirp.npz was computed from (librosa 0.10.2, reflect padding, the
    parameters Resemblyzer's encoder was trained with)."""
    t = np.arange(16000) / 16000
    return (0.3 * np.sin(2 * np.pi * (200 + 1800 * t) * t) + 0.05 * np.sin(2 * np.pi * 3100 * t)).astype(
        np.float32
    )


def test_the_mel_frames_are_librosas() -> None:
    with np.load(MEL_REFERENCE) as data:
        reference = data["mel"]
    frames = mel_frames(chirp()).numpy()
    assert frames.shape == reference.shape == (101, 40)
    np.testing.assert_allclose(frames, reference, rtol=1e-4, atol=1e-7 * reference.max())


def test_partials_cover_the_utterance_as_resemblyzer_slices_it() -> None:
    assert partial_starts(8000) == [0]  # shorter than a partial: one, padded
    assert partial_starts(16000 * 3) == [0, 77, 154]  # 1.6 s partials, 1.3 a second, the last padded
    assert partial_starts(int(16000 * 1.62)) == [0]  # a last partial covering < 75 % is dropped


def _voices(*centres: int, jitter: float = 0.05, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = np.eye(8)
    rows = [basis[c] + rng.normal(scale=jitter, size=8) for c in centres]
    return np.asarray([r / np.linalg.norm(r) for r in rows], dtype=np.float32)


def test_labels_follow_first_appearance_and_a_given_count_is_kept() -> None:
    embeddings = _voices(3, 1, 3, 1, 5, 3)
    assert cluster_speakers(embeddings) == ["S1", "S2", "S1", "S2", "S3", "S1"]
    assert len(set(cluster_speakers(embeddings, speakers=2))) == 2
    assert cluster_speakers(embeddings, speakers=1) == ["S1"] * 6
    assert cluster_speakers(embeddings[:1]) == ["S1"] and cluster_speakers(embeddings[:0]) == []


def test_a_short_utterance_does_not_vote_and_joins_the_nearest_voice() -> None:
    embeddings = _voices(0, 1, 0, 2, 1)
    # The third utterance is 0.4 s: alone it would read as a third voice; it joins the nearest one.
    durations = [3.0, 3.0, 3.0, 0.4, 3.0]
    labels = cluster_speakers(embeddings, durations)
    assert labels[:3] == ["S1", "S2", "S1"] and labels[3] in {"S1", "S2"} and labels[4] == "S2"


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="speakers"):
        cluster_speakers(_voices(0, 1), speakers=0)
    with pytest.raises(ValueError, match="durations"):
        cluster_speakers(_voices(0, 1), [1.0])


def _words(n: int, every_s: float = 0.5) -> list[Word]:
    return [Word(i * every_s, i * every_s + 0.4, f" w{i}") for i in range(n)]


def test_the_voice_is_cut_where_adjacent_partials_differ_and_nowhere_else() -> None:
    a, b = np.eye(4, dtype=np.float32)[0], np.eye(4, dtype=np.float32)[1]
    starts = np.arange(0.0, 8.0, 0.77)  # partials as Resemblyzer steps them, 1.6 s each
    change_s = 4.0
    partials = np.stack([a if s + 0.8 < change_s else b for s in starts])
    words = _words(16)  # a gap every half second, at 0.45, 0.95, …
    [cut] = change_points(words, partials, starts)
    assert abs((words[cut - 1].end + words[cut].start) / 2 - change_s) < 1.0
    assert change_points(words, np.stack([a] * len(starts)), starts) == []  # one voice: no cut
    assert change_points(words[:1], partials, starts) == []  # one word: no gap to cut at


def test_partials_of_silence_are_left_out() -> None:
    audio = np.concatenate([np.zeros(32000), 0.3 * np.sin(np.arange(48000) / 5.0)]).astype(np.float32)
    starts = np.arange(0.0, 4.0, 0.77)
    # The first partial (0-1.6 s) lies in the silence; the second reaches the sound at 2 s, the rest hold it.
    assert voiced(audio, starts).tolist() == [False, True, True, True, True, True]
    assert voiced(np.zeros(16000, dtype=np.float32), np.array([0.0])).tolist() == [True]
