"""The kit's emotional speech (RAVDESS, Emo-DB, the Javanese takes): labels from the file names, speakers,
and each clip's utterance span as the pipeline's own transcriber finds it.

Label mapping onto MELD's seven emotions: RAVDESS calm → neutral (a kind of neutral delivery); Emo-DB
boredom → left out (neither neutral nor any MELD class: 81 clips). Emo-DB has no surprise and the Javanese
takes no disgust: their clips are trained with that class masked out of the softmax
(`CorpusClip.classes`), never as a negative. The Javanese takes are the speech of the kit's face + voice
clips' actors (take 01 is the matching clip's sound), so their speaker is the clip's actor.

Spans: the pipeline analyses an utterance's span as Whisper's word timestamps give it, not the whole file
(RAVDESS clips hold ~0.7 s of silence before the speech). Transcribing 1,735 three-second files one by one
costs ~2 s each on a core, mostly the padded 30 s encoder window, so `transcribe_spans` lays one speaker's
clips end to end with a second of silence between them, transcribes ~28 s at a time with the same
`Transcriber`, and gives each clip the words that fall inside it: [first word's start, last word's end].
A clip with no word keeps its whole length (as the pipeline keeps a file with no speech).
"""

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from emotion_contract.labels import EMOTIONS
from shared.media.decode import load_audio
from shared.transcription import SAMPLE_RATE, Transcriber, Word

RAVDESS_EMOTIONS: Final = {
    "01": "neutral",
    "02": "neutral",  # calm
    "03": "joy",
    "04": "sadness",
    "05": "anger",
    "06": "fear",
    "07": "disgust",
    "08": "surprise",
}
EMODB_EMOTIONS: Final = {
    "W": "anger",
    "E": "disgust",
    "A": "fear",
    "F": "joy",
    "N": "neutral",
    "T": "sadness",
}
EMODB_LEFT_OUT: Final = {"L": "boredom"}
JAVANESE_EMOTIONS: Final = {
    "01": "neutral",
    "02": "sadness",
    "03": "joy",
    "04": "surprise",
    "05": "fear",
    "06": "anger",
}
ALL_CLASSES: Final = tuple(range(len(EMOTIONS)))
EMODB_CLASSES: Final = tuple(EMOTIONS.index(e) for e in EMOTIONS if e in EMODB_EMOTIONS.values())
JAVANESE_CLASSES: Final = tuple(EMOTIONS.index(e) for e in EMOTIONS if e in JAVANESE_EMOTIONS.values())
RAVDESS_SOURCE: Final = (
    "RAVDESS speech, actors 01-20 (Livingstone & Russo 2018; CC BY-NC-SA 4.0: non-commercial use only)"
)
EMODB_SOURCE: Final = "Emo-DB (Burkhardt et al. 2005; freely distributed by its authors for research)"
_RAVDESS_NAME: Final = re.compile(r"^03-01-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_EMODB_NAME: Final = re.compile(r"^(\d\d)([a-z]\d\d)([A-Z])([a-z])$")
_JAVANESE_NAME: Final = re.compile(r"^(\d\d)-(\d\d)-(\d\d)_(\d\d)$")
GAP_S: Final = 1.0
WINDOW_S: Final = 28.0


@dataclass(frozen=True)
class CorpusClip:
    path: Path
    corpus: str  # "ravdess" | "emodb" | "javanese"
    speaker: str  # unique across corpora, e.g. "ravdess-14", "emodb-03", "javanese-02"
    label: int  # index into EMOTIONS
    classes: tuple[int, ...]  # the classes this corpus can label; the others are masked in the loss
    intensity: str = ""

    @property
    def stem(self) -> str:
        return self.path.stem


def parse_clip(path: Path) -> CorpusClip | None:
    """The clip's labels from its RAVDESS or Emo-DB file name; None for a class left out (boredom) or a
    name of neither corpus."""
    if match := _RAVDESS_NAME.match(path.stem):
        emotion, intensity, _, _, actor = match.groups()
        return CorpusClip(
            path, "ravdess", f"ravdess-{actor}", EMOTIONS.index(RAVDESS_EMOTIONS[emotion]), ALL_CLASSES,
            intensity="strong" if intensity == "02" else "normal",
        )  # fmt: skip
    if match := _EMODB_NAME.match(path.stem):
        speaker, _, letter, _ = match.groups()
        if letter in EMODB_LEFT_OUT or letter not in EMODB_EMOTIONS:
            return None
        return CorpusClip(
            path, "emodb", f"emodb-{speaker}", EMOTIONS.index(EMODB_EMOTIONS[letter]), EMODB_CLASSES
        )
    if match := _JAVANESE_NAME.match(path.stem):
        actor, _, expression, _ = match.groups()
        if expression not in JAVANESE_EMOTIONS:
            return None
        return CorpusClip(
            path,
            "javanese",
            f"javanese-{actor}",
            EMOTIONS.index(JAVANESE_EMOTIONS[expression]),
            JAVANESE_CLASSES,
        )
    return None


def list_clips(directory: Path) -> list[CorpusClip]:
    """Every labelled clip under `directory` (RAVDESS, Emo-DB or Javanese names; .flac or .wav), sorted by
    path."""
    paths = sorted(p for p in directory.rglob("*") if p.suffix.lower() in {".flac", ".wav"})
    clips = [clip for p in paths if (clip := parse_clip(p)) is not None]
    if not clips:
        raise FileNotFoundError(f"no RAVDESS, Emo-DB or Javanese clips under {directory}")
    return clips


class ClipSpan(BaseModel):
    start: float
    end: float
    text: str
    language: str | None


def _by_speaker(clips: Iterable[CorpusClip]) -> dict[str, list[CorpusClip]]:
    groups: dict[str, list[CorpusClip]] = {}
    for clip in clips:
        groups.setdefault(clip.speaker, []).append(clip)
    return groups


def transcribe_spans(
    clips: Sequence[CorpusClip], transcriber: Transcriber, cache: Path | None = None
) -> dict[str, ClipSpan]:
    """{stem: span} for every clip, read from and added to the JSON `cache`."""
    spans: dict[str, ClipSpan] = {}
    if cache is not None and cache.is_file():
        spans = {k: ClipSpan.model_validate(v) for k, v in json.loads(cache.read_text()).items()}
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), dtype=np.float32)
    todo = sorted((c for c in clips if c.stem not in spans), key=lambda c: (c.corpus != "ravdess", c.stem))
    for group in _by_speaker(todo).values():
        window: list[tuple[CorpusClip, npt.NDArray[np.float32]]] = []
        for clip in [*group, None]:
            audio = load_audio(clip.path) if clip is not None else None
            length = sum(len(a) + len(gap) for _, a in window)
            if window and (audio is None or length + len(audio) > WINDOW_S * SAMPLE_RATE):
                spans |= _window_spans(window, gap, transcriber)
                window = []
                if cache is not None:
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    cache.write_text(json.dumps({k: v.model_dump() for k, v in spans.items()}))
            if clip is not None and audio is not None:
                window.append((clip, audio))
    return spans


def _window_spans(
    window: list[tuple[CorpusClip, npt.NDArray[np.float32]]],
    gap: npt.NDArray[np.float32],
    transcriber: Transcriber,
) -> dict[str, ClipSpan]:
    samples = np.concatenate([part for _, audio in window for part in (audio, gap)])
    words, language = transcriber.words(samples)
    regions: list[tuple[float, float]] = []
    offset = 0.0
    for _, audio in window:
        regions.append((offset, offset + len(audio) / SAMPLE_RATE))
        offset = regions[-1][1] + len(gap) / SAMPLE_RATE

    def nearest(word: Word) -> int:
        """Whisper's word times can drift into the silence between clips: the closest clip owns a word."""
        middle = (word.start + word.end) / 2
        return min(range(len(regions)), key=lambda i: max(regions[i][0] - middle, middle - regions[i][1], 0))

    owners = [nearest(w) for w in words]
    out: dict[str, ClipSpan] = {}
    for i, (clip, audio) in enumerate(window):
        offset, length = regions[i][0], len(audio) / SAMPLE_RATE
        inside = [w for w, owner in zip(words, owners, strict=True) if owner == i]
        if inside:
            start = max(0.0, inside[0].start - offset)
            end = min(length, inside[-1].end - offset)
            text = "".join(w.word for w in inside).strip()
        else:
            start, end, text = 0.0, length, ""
        if end <= start:
            start, end = 0.0, length
        out[clip.stem] = ClipSpan(start=start, end=end, text=text, language=language)
    return out
