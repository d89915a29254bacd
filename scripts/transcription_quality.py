"""What the transcription costs and hears on the kit's real speech: seconds, Whisper encoder runs, the
language and words path, the word error on RAVDESS's two known sentences, and the talking videos' text.

    python scripts/transcription_quality.py [--clips 40] [--temperatures 0.0]

Figures, not assertions: run it before and after a change to the transcriber and compare.
"""

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.assets import whisper_model_dir  # noqa: E402
from shared.media.decode import load_audio  # noqa: E402
from shared.transcription import GREEDY, Transcriber  # noqa: E402

DATA = REPO.parent / "shared" / "data"
SENTENCES = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def edits(reference: list[str], heard: list[str]) -> int:
    """Word-level Levenshtein distance."""
    row = list(range(len(heard) + 1))
    for i, wanted in enumerate(reference, 1):
        diagonal, row[0] = row[0], i
        for j, word in enumerate(heard, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (wanted != word))
    return row[-1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--clips", type=int, default=40, help="clips of each corpus, spread over its speakers"
    )
    parser.add_argument("--temperatures", type=float, nargs="+", default=list(GREEDY))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    javanese = sorted((DATA / "voice" / "javanese").glob("*.flac"))
    ravdess = sorted((DATA / "voice" / "ravdess").glob("*.flac"))
    groups = {
        "javanese takes": javanese[:: max(1, len(javanese) // args.clips)][: args.clips],
        "ravdess clips": ravdess[:: max(1, len(ravdess) // args.clips)][: args.clips],
        "talking videos": sorted((DATA / "talking").glob("*.mp4")),
    }
    transcriber = Transcriber(
        whisper_model_dir("base", REPO / "var" / "cache" / "whisper"),
        cpu_threads=args.threads,
        temperatures=args.temperatures,
    )
    for name, paths in groups.items():
        audio = {path: load_audio(path) for path in paths}
        runs, started = transcriber.encoder_runs, time.perf_counter()
        heard = {path: transcriber.transcribe(samples) for path, samples in audio.items()}
        seconds = time.perf_counter() - started
        speech_s = sum(len(samples) for samples in audio.values()) / 16_000
        print(
            f"{name}: {len(paths)} files, {speech_s:.0f} s of audio, {seconds:.1f} s "
            f"({seconds / len(paths):.2f} s a file), {transcriber.encoder_runs - runs} encoder runs"
        )
        if name == "javanese takes":
            paths_taken = Counter((t.language, t.words.source.value) for t in heard.values())
            print("  language, words:", dict(paths_taken.most_common()))
        if name == "ravdess clips":
            wrong = total = 0
            for path, transcript in heard.items():
                reference = words(SENTENCES[path.stem.split("-")[4]])
                wrong += edits(reference, words(" ".join(s.text for s in transcript.spans)))
                total += len(reference)
            print(f"  word error on the two sentences: {wrong / total:.3f}")
        if name == "talking videos":
            for path, transcript in heard.items():
                print(f"  {path.name}: {' '.join(s.text for s in transcript.spans)}")


if __name__ == "__main__":
    main()
