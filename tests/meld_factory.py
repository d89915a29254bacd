"""Makes a tiny MELD.Raw-layout dataset: `<split>_sent_emo.csv` in MELD's exact columns (UTF-8, CRLF) and
`dia{D}_utt{U}.mp4` clips whose speech is the utterance spoken by espeak-ng.

Each utterance's clip is one of the kinds MELD training must cope with, so a test knows which modalities
each sample has: a talking face (a real face video under the speech), a face-less picture (the ramp
video: audio only), a clip with no audio track and no face, or no clip at all.
"""

import csv
import subprocess
import wave
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from tests.media_factory import require_tools, video_with_audio, video_without_audio

MELD_COLUMNS: Final = (
    "Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season",
    "Episode", "StartTime", "EndTime",
)  # fmt: skip
FACE_SIZE: Final = 224  # small enough to decode fast, large enough for the face detector


class Clip(StrEnum):
    FACE = "face"  # a talking face and speech: text, video and audio
    NO_FACE = "no_face"  # a grey ramp and speech: text and audio
    SILENT = "silent"  # a grey ramp, no audio track: text only
    MISSING = "missing"  # no file: text only


@dataclass(frozen=True)
class Row:
    text: str
    emotion: str
    sentiment: str
    clip: Clip


@dataclass(frozen=True)
class MeldSplit:
    csv: Path
    clips_dir: Path
    rows: tuple[Row, ...]


def write_meld_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    """Rows (MELD column → value) written as MELD ships them: UTF-8, CRLF, times quoted."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MELD_COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def meld_row(
    index: int, text: str, emotion: str, sentiment: str, dialogue: int, utterance: int
) -> dict[str, str]:
    start = 60 + index * 3
    return {
        "Sr No.": str(index + 1),
        "Utterance": text,
        "Speaker": "Tester",
        "Emotion": emotion,
        "Sentiment": sentiment,
        "Dialogue_ID": str(dialogue),
        "Utterance_ID": str(utterance),
        "Season": "1",
        "Episode": "1",
        "StartTime": f"00:{start // 60:02d}:{start % 60:02d},000",
        "EndTime": f"00:{(start + 2) // 60:02d}:{(start + 2) % 60:02d},500",
    }


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True, capture_output=True
    )


def _speak(text: str, dest: Path) -> float:
    subprocess.run(["espeak-ng", "-w", str(dest), text], check=True, capture_output=True)
    with wave.open(str(dest), "rb") as reader:
        return reader.getnframes() / reader.getframerate()


def face_clip(face_video: Path, speech: Path, dest: Path, duration_s: float) -> Path:
    """The first `duration_s` of a real talking-face video, scaled down, with the speech as its sound."""
    _ffmpeg(
        "-i", str(face_video), "-i", str(speech), "-t", f"{duration_s:.3f}",
        "-map", "0:v", "-map", "1:a", "-vf", f"scale={FACE_SIZE}:{FACE_SIZE}", "-r", "25",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(dest),
    )  # fmt: skip
    return dest


def make_split(
    root: Path, split: str, clips_dir_name: str, rows: list[Row], face_video: Path, *, first_dialogue: int = 0
) -> MeldSplit:
    """One split: its CSV under root, its clips under root/clips_dir_name (dialogue per two utterances)."""
    require_tools()
    clips_dir = root / clips_dir_name
    clips_dir.mkdir(parents=True, exist_ok=True)
    scratch = root / f".{split}-speech"
    scratch.mkdir(exist_ok=True)
    records = []
    for index, row in enumerate(rows):
        dialogue, utterance = first_dialogue + index // 2, index % 2
        records.append(meld_row(index, row.text, row.emotion, row.sentiment, dialogue, utterance))
        dest = clips_dir / f"dia{dialogue}_utt{utterance}.mp4"
        if row.clip is Clip.MISSING:
            continue
        speech = scratch / f"{index}.wav"
        duration = _speak(row.text, speech)
        if row.clip is Clip.FACE:
            face_clip(face_video, speech, dest, duration)
        elif row.clip is Clip.NO_FACE:
            video_with_audio(speech, dest, duration)
        else:
            video_without_audio(dest, duration)
    return MeldSplit(
        csv=write_meld_csv(root / f"{split}_sent_emo.csv", records), clips_dir=clips_dir, rows=tuple(rows)
    )
