"""Windows a file without speech is cut into."""

import pytest

from shared.stages import fixed_segments


@pytest.mark.parametrize(
    ("duration", "bounds"),
    [
        (0.4, [(0.0, 0.4)]),
        (2.0, [(0.0, 2.0)]),
        (2.9, [(0.0, 2.9)]),  # a remainder under half a window joins the last one
        (3.0, [(0.0, 2.0), (2.0, 3.0)]),
        (5.0, [(0.0, 2.0), (2.0, 4.0), (4.0, 5.0)]),
        (6.1, [(0.0, 2.0), (2.0, 4.0), (4.0, 6.1)]),
    ],
)
def test_windows_cover_the_file_without_gaps(duration: float, bounds: list[tuple[float, float]]) -> None:
    segments = fixed_segments(duration)
    assert [(s.start, s.end) for s in segments] == bounds
    assert [s.index for s in segments] == list(range(len(bounds)))
    assert all(s.text == "" for s in segments)


def test_an_empty_file_is_one_window() -> None:
    assert [(s.start, s.end) for s in fixed_segments(0.0)] == [(0.0, 0.0)]
