"""Short clips: a folder of them analysed one by one against the same clips joined into one file.

    python scripts/bench_short_clips.py [--clips 40] [--bundle DIR]

Takes the kit's real Javanese face + voice clips (1.7-8 s each), spread over the actors, and prints, on
this machine: the whole in-process analysis of each clip in turn (as `emotion-analyzer analyze FOLDER`
does, the models loaded once), clips per minute; the same clips joined into one file at their own size and
analysed once; the ratio of the two (the issue's bar: at most 1.5); and Whisper's transcription alone,
each way. Figures, not assertions.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analyzer.pipeline import InProcessAnalyzer, PipelineOptions  # noqa: E402
from scripts.bench import joined_video  # noqa: E402
from shared.media.decode import probe  # noqa: E402
from shared.stages import transcribe_file  # noqa: E402

CLIPS = REPO.parent / "shared" / "data" / "av" / "javanese" / "clips"


def transcription_seconds(analyzer: InProcessAnalyzer, paths: list[Path]) -> float:
    started = time.perf_counter()
    for path in paths:
        transcribe_file(
            path,
            transcriber=analyzer.transcriber,
            text=analyzer.text,
            max_duration_s=analyzer.options.max_duration_s,
        )
    return time.perf_counter() - started


def analysis_seconds(analyzer: InProcessAnalyzer, paths: list[Path]) -> tuple[float, int]:
    """Seconds for the whole analysis of each path in turn, and the utterances found."""
    started, utterances = time.perf_counter(), 0
    for path in paths:
        utterances += len(analyzer.analyze(path).utterances)
    return time.perf_counter() - started, utterances


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=REPO / "var" / "bundles" / "default")
    parser.add_argument("--clips", type=int, default=40)
    args = parser.parse_args()
    every = sorted(CLIPS.glob("*.mp4"))
    clips = every[:: max(1, len(every) // args.clips)][: args.clips]
    seconds = sum(probe(clip).duration_s for clip in clips)
    analyzer = InProcessAnalyzer(PipelineOptions(bundle_uri=str(args.bundle)))
    with tempfile.TemporaryDirectory(prefix="ea-short-") as scratch:
        joined = joined_video(Path(scratch) / "joined.mp4", clips, width=360, height=270)
        analyzer.analyze(clips[0])  # warm-up: models touched
        runs_before = analyzer.transcriber.encoder_runs
        alone_s, alone_utterances = analysis_seconds(analyzer, clips)
        alone_runs = analyzer.transcriber.encoder_runs - runs_before
        runs_before = analyzer.transcriber.encoder_runs
        joined_s, joined_utterances = analysis_seconds(analyzer, [joined])
        joined_runs = analyzer.transcriber.encoder_runs - runs_before
        whisper_alone = transcription_seconds(analyzer, clips)
        whisper_joined = transcription_seconds(analyzer, [joined])
    print(f"\n{len(clips)} clips, {seconds:.0f} s of audio and video, bundle {analyzer.bundle_version}\n")
    print(f"{'':<22} {'one by one':>12} {'joined':>10} {'ratio':>7}")
    print(f"{'whole analysis, s':<22} {alone_s:>12.1f} {joined_s:>10.1f} {alone_s / joined_s:>7.2f}")
    print(
        f"{'transcription alone, s':<22} {whisper_alone:>12.1f} {whisper_joined:>10.1f} "
        f"{whisper_alone / whisper_joined:>7.2f}"
    )
    print(f"{'Whisper encoder runs':<22} {alone_runs:>12} {joined_runs:>10}")
    print(f"{'utterances':<22} {alone_utterances:>12} {joined_utterances:>10}")
    print(
        f"\none by one: {60 * len(clips) / alone_s:.1f} clips a minute, real-time factor "
        f"{alone_s / seconds:.2f}"
    )


if __name__ == "__main__":
    main()
