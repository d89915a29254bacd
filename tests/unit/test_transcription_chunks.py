"""How long audio is split for transcription: contiguous pieces, cut in the quiet near each nominal end."""

import numpy as np

from shared.transcription import SAMPLE_RATE, chunk_bounds


def test_short_audio_is_one_piece() -> None:
    audio = np.ones(int(65 * SAMPLE_RATE), dtype=np.float32)
    assert chunk_bounds(audio, chunk_s=60.0) == [(0, len(audio))]  # within 10 % of a piece


def test_long_audio_is_cut_in_its_silences_and_covered_whole() -> None:
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.3, int(35 * 60 * SAMPLE_RATE)).astype(np.float32)
    gaps = [(598.0, 598.6), (1201.5, 1202.0), (1799.0, 1799.4)]
    for start, end in gaps:
        audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)] = 0.0
    bounds = chunk_bounds(audio, chunk_s=600.0)
    assert [first for first, _ in bounds[1:]] == [last for _, last in bounds[:-1]]  # contiguous
    assert bounds[0][0] == 0 and bounds[-1][1] == len(audio) and len(bounds) == 4
    for (_, cut), (start, end) in zip(bounds[:-1], gaps, strict=True):
        assert start <= cut / SAMPLE_RATE <= end, (cut / SAMPLE_RATE, start, end)
