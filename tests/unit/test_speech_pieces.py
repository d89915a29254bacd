"""How a file's speech is cut into Whisper windows, and where their states lie on the file's time line."""

import numpy as np

from shared.speech_pass import PIECE_SAMPLES, FileStates, Piece, pieces_of

S = 16_000


def test_a_file_that_fits_one_window_is_read_whole() -> None:
    # The voice learnt clips encoded whole, the silence around the words included.
    regions = [(1 * S, 2 * S), (20 * S, 22 * S)]
    assert pieces_of(regions, total=25 * S) == [Piece(0, 25 * S, speech=tuple(regions))]
    assert pieces_of([], total=25 * S) == []


def test_a_longer_file_is_cut_at_its_silences() -> None:
    regions = [(2 * S, 10 * S), (12 * S, 20 * S), (40 * S, 50 * S), (52 * S, 75 * S), (76 * S, 80 * S)]
    pieces = pieces_of(regions, total=90 * S)
    # 2 s between the first two: one piece; 20 s of silence: a new one; 23 s more would pass 30 s.
    assert [(p.start, p.end) for p in pieces] == [(2 * S, 20 * S), (40 * S, 50 * S), (52 * S, 80 * S)]
    assert pieces[2].speech == tuple(regions[3:])  # each piece knows its own speech
    assert all(piece.samples <= PIECE_SAMPLES for piece in pieces)


def test_a_region_longer_than_a_window_is_cut_into_windows() -> None:
    pieces = pieces_of([(0, 70 * S)], total=80 * S)
    assert [(p.start, p.end) for p in pieces] == [(0, 30 * S), (30 * S, 60 * S), (60 * S, 70 * S)]


def test_times_in_a_piece_are_times_in_the_file_clamped_to_it() -> None:
    piece = Piece(40 * S, 50 * S)
    assert piece.file_time(2.5) == 42.5 and piece.file_time(-1) == 40.0 and piece.file_time(30) == 50.0


def test_states_lie_where_their_piece_was_heard_and_silences_are_absent() -> None:
    states = FileStates(60 * S, 4)
    states.place(Piece(10 * S, 20 * S), np.ones((1500, 4), dtype=np.float32))  # a padded window's rows
    assert (
        states.present[500:1000].all() and not states.present[:500].any() and not states.present[1000:].any()
    )
    # Only the piece's own rows are placed: the padding's states are not speech.
    assert states.values[1000:].sum() == 0
    # A span pools the present states around it, or the nearest one where none is near.
    assert len(states.span(9.0, 11.0, 0.25)) == 563 - 500  # to the end of 11.25 s, from 10 s
    assert len(states.span(30.0, 31.0, 0.75)) == 1


def test_words_are_bounded_by_the_speech_vad_found() -> None:
    piece = Piece(0, 19 * S, speech=((int(1.8 * S), int(3.5 * S)), (int(6.2 * S), int(8.3 * S))))
    assert piece.heard(2.0, 2.3) == (2.0, 2.3)  # inside speech: as Whisper heard it
    assert piece.heard(2.9, 4.9) == (2.9, 3.5)  # run on into the pause: ends with the speech
    assert piece.heard(4.9, 4.9) == (3.5, 3.5)  # wholly in the pause: at the end of the speech before
    assert piece.heard(6.0, 6.7) == (6.0, 6.7)  # an onset just before VAD's: kept
    assert piece.heard(0.5, 0.9) == (0.5, 0.9)  # before any speech: nothing to bound it by
    assert Piece(0, S).heard(0.2, 0.4) == (0.2, 0.4)
