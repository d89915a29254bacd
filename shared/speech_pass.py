"""One Whisper encoder pass over a file's speech, shared by everything that reads it.

Whisper's cost is its encoder over 30 s windows, padded when shorter. faster-whisper, asked for a
transcript, encodes the first window once to detect the language and again to decode it; the translation
of speech in another language was a third pass and the voice's states a fourth. Here the file's speech
(Silero VAD) is read in pieces of at most 30 s, each encoded once, and that encoder output serves
language detection, the transcript, the translation and the voice's states.

A piece is a stretch of the file, not speech laid end to end: the voice's head learnt the states of
utterances with the silence around them, and states of collapsed speech moved its answers (a mean total
variation of 0.15 on the kit's clips, 0.78 of the argmaxes kept). A file that fits one window is one piece,
encoded exactly as the voice was trained; a longer one is cut at its silences. The states of silences
between pieces are absent, and an utterance pools what is there.
"""

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

SAMPLE_RATE: Final = 16_000
PIECE_S: Final = 30.0
PIECE_SAMPLES: Final = int(PIECE_S * SAMPLE_RATE)
SAMPLES_PER_STATE: Final = 320  # 20 ms: two 10 ms mel frames per encoder state
WINDOW_FRAMES: Final = 3000  # Whisper's window: 30 s of 10 ms mel frames
# Regions end at pauses of 160 ms (faster-whisper's batched pipeline's setting), 0.2 s kept around them, and
# are cut at 30 s so that each fits one window. They are fine enough to bound the words Whisper heard (see
# `Piece.heard`); pieces join them across longer pauses.
MIN_SILENCE_MS: Final = 160
SPEECH_PAD_MS: Final = 200
# Speech regions this close are read in one window, the silence between them with them; further apart, each
# has its own, so that no window is mostly silence (where Whisper invents words).
MAX_GAP_SAMPLES: Final = 5 * SAMPLE_RATE


@dataclass(frozen=True)
class Piece:
    """A stretch of the file that holds speech, at most one Whisper window long."""

    start: int  # samples in the file
    end: int
    speech: tuple[tuple[int, int], ...] = ()  # its VAD regions, [start, end) samples in the file

    @property
    def samples(self) -> int:
        return self.end - self.start

    def audio(self, samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return np.asarray(samples[self.start : self.end], dtype=np.float32)

    def file_time(self, seconds: float) -> float:
        """A time in the piece (seconds from its start, clamped to it) as a time in the file."""
        return (self.start + min(max(seconds * SAMPLE_RATE, 0.0), self.samples)) / SAMPLE_RATE

    def heard(self, start: float, end: float) -> tuple[float, float]:
        """A word's times (file seconds) bounded by the speech VAD found. Whisper's word times drift into
        pauses on windows padded with silence: tiny.en stretched "the" over the 1.5 s after a RAVDESS
        sentence and put "door." after it, which cut the sentence in two speakers. So a word ends where its
        region of speech ends, and one wholly inside a pause is put at the end of the speech before it."""
        before: float | None = None
        for first, last in self.speech:
            region_start, region_end = first / SAMPLE_RATE, last / SAMPLE_RATE
            if region_start <= start < region_end:
                return start, max(start, min(end, region_end))
            if start < region_start:
                if end > region_start:  # Whisper hears an onset VAD is not yet sure of
                    return start, min(end, region_end)
                break
            before = region_end
        return (start, end) if before is None else (before, before)


def pieces_of(
    regions: list[tuple[int, int]], total: int, limit: int = PIECE_SAMPLES, max_gap: int = MAX_GAP_SAMPLES
) -> list[Piece]:
    """Stretches of a file of `total` samples that cover its speech `regions` (sorted [start, end)): the
    whole file where it fits one window and holds speech; else consecutive regions joined, silences
    between them included, while the stretch fits `limit` and no silence in it exceeds `max_gap`."""
    if not regions:
        return []
    if total <= limit:
        return [Piece(0, total, tuple(regions))]
    groups: list[list[tuple[int, int]]] = [[regions[0]]]
    for start, end in regions[1:]:
        if end - groups[-1][0][0] <= limit and start - groups[-1][-1][1] <= max_gap:
            groups[-1].append((start, end))
        else:
            groups.append([(start, end)])
    # VAD cuts regions at 30 s; a longer one from another caller is cut into windows.
    return [
        Piece(at, min(at + limit, group[-1][1]), tuple(r for r in group if r[1] > at and r[0] < at + limit))
        for group in groups
        for at in range(group[0][0], group[-1][1], limit)
    ]


def speech_regions(samples: npt.NDArray[np.float32]) -> list[tuple[int, int]]:
    """[start, end) samples of the speech Silero VAD finds, each at most 30 s."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(
        min_silence_duration_ms=MIN_SILENCE_MS, speech_pad_ms=SPEECH_PAD_MS, max_speech_duration_s=PIECE_S
    )
    found = get_speech_timestamps(np.asarray(samples, dtype=np.float32), options)
    return [(int(r["start"]), min(int(r["end"]), len(samples))) for r in found]


def window_features(model: "WhisperModel", audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The features of one window: the audio padded with silence to 30 s, as Whisper was trained (and as the
    voice's head was), not the spectrogram padded with zeros."""
    padded = np.pad(
        np.asarray(audio, dtype=np.float32)[:PIECE_SAMPLES], (0, max(0, PIECE_SAMPLES - len(audio)))
    )
    return np.ascontiguousarray(model.feature_extractor(padded)[:, :WINDOW_FRAMES])


class CountingEncoder:
    """Stands in for a WhisperModel's `encode` and counts its runs (a window each)."""

    def __init__(self, encode: Callable[[npt.NDArray[np.float32]], Any]) -> None:
        self._encode = encode
        self.calls = 0

    def __call__(self, features: npt.NDArray[np.float32]) -> Any:
        self.calls += 1
        return self._encode(features)


def counted(model: "WhisperModel") -> CountingEncoder:
    """Wraps `model.encode` (once) in a counter and returns it."""
    current = model.encode
    if isinstance(current, CountingEncoder):
        return current
    counter = CountingEncoder(current)
    model.encode = counter
    return counter


def to_numpy(output: Any) -> npt.NDArray[np.float32]:
    """(frames, dim) float32 of an encoder output for one window, wherever the model ran."""
    if getattr(output, "device", "cpu") != "cpu":
        import ctranslate2

        output = output.to_device(ctranslate2.Device.cpu)
    states: npt.NDArray[np.float32] = np.asarray(output, dtype=np.float32)
    return states[0] if states.ndim == 3 else states


def state_frames(n_samples: int) -> int:
    """How many 20 ms states cover that many 16 kHz samples."""
    return max(1, -(-n_samples // SAMPLES_PER_STATE))


class FileStates:
    """Whisper encoder states on the file's own time line, 20 ms a row; rows of the silences VAD dropped are
    absent (`present` False)."""

    def __init__(self, n_samples: int, dim: int) -> None:
        self.values = np.zeros((state_frames(n_samples), dim), dtype=np.float32)
        self.present = np.zeros(len(self.values), dtype=bool)

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes + self.present.nbytes)

    def place(self, piece: Piece, states: npt.NDArray[np.float32]) -> None:
        """Puts a piece's window states where the piece lies in the file."""
        first = piece.start // SAMPLES_PER_STATE
        count = min(state_frames(piece.samples), len(states), len(self.values) - first)
        self.values[first : first + count] = states[:count]
        self.present[first : first + count] = True

    def span(self, start: float, end: float, margin_s: float) -> npt.NDArray[np.float32]:
        """The present states of [start − margin, end + margin) seconds; where that holds none, the present
        state nearest its middle (at least one row, zeros for a file without speech)."""
        per_second = SAMPLE_RATE / SAMPLES_PER_STATE
        first = min(max(0, int((start - margin_s) * per_second)), len(self.values) - 1)
        last = max(first + 1, min(len(self.values), int(np.ceil((end + margin_s) * per_second))))
        rows = self.values[first:last][self.present[first:last]]
        if len(rows):
            return rows
        kept = np.flatnonzero(self.present)
        if not len(kept):
            return self.values[first:last]
        middle = (first + last) / 2
        nearest = kept[int(np.argmin(np.abs(kept - middle)))]
        return self.values[nearest : nearest + 1]


def speech_states(
    model: "WhisperModel", samples: npt.NDArray[np.float32], bounds: list[tuple[int, int]], dim: int
) -> FileStates:
    """The states of the file's speech as a transcription of it computes them (VAD run over each [first,
    last) of `bounds`, each piece encoded once): for a voice that was not given the transcriber's."""
    samples = np.asarray(samples, dtype=np.float32)
    states = FileStates(len(samples), dim)
    for piece in iter_pieces(samples, bounds):
        states.place(piece, to_numpy(model.encode(window_features(model, piece.audio(samples)))))
    return states


def iter_pieces(samples: npt.NDArray[np.float32], bounds: list[tuple[int, int]]) -> Iterator[Piece]:
    """The file's speech pieces, VAD run over each [first, last) of `bounds`."""
    for first, last in bounds:
        regions = speech_regions(samples[first:last])
        for piece in pieces_of(regions, total=last - first):
            speech = tuple((first + start, first + end) for start, end in piece.speech)
            yield Piece(first + piece.start, first + piece.end, speech)


def model_print(directory: Path) -> str:
    """A CTranslate2 model directory's weights by their size and first and last MiB: which model a copy is,
    not a byte-by-byte proof."""
    weights = Path(directory) / "model.bin"
    size = weights.stat().st_size
    with weights.open("rb") as handle:
        head = handle.read(1 << 20)
        handle.seek(max(0, size - (1 << 20)))
        tail = handle.read()
    return f"{size}-{hashlib.blake2b(head + tail, digest_size=16).hexdigest()}"


def same_model(first: Path, second: Path) -> bool:
    """Whether two CTranslate2 model directories hold the same weights (`model_print`)."""
    return Path(first).resolve() == Path(second).resolve() or model_print(first) == model_print(second)
