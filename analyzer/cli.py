"""`emotion-analyzer`: analyse a video or audio file in this process, no servers needed, or through a server.

emotion-analyzer analyze talk.mp4                   a table of utterances, with a progress display
emotion-analyzer analyze talk.mp4 --json            exactly the REST API's `result` object
emotion-analyzer analyze talk.mp4 --plot talk.png   also a picture of the emotions over time
emotion-analyzer analyze talk.mp4 --vtt talk.vtt    also subtitles a player shows over the video (--srt)
emotion-analyzer analyze a.mp4 b.wav recordings/ --jsonl
                                                    several files or folders, the models loaded once: one JSON
                                                    line per file, {"path", "result"} or {"path", "error"}
emotion-analyzer analyze talk.mp4 --server http://127.0.0.1:8000 --key ea_…
                                                    the same through a server's API (or EA_SERVER, EA_API_KEY)
"""

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final, NamedTuple

from rich.console import Console
from rich.table import Table

from emotion_contract.events import Stage
from emotion_contract.labels import MAX_SPEAKERS
from emotion_contract.results import AnalysisResult
from emotion_contract.subtitles import to_srt, to_webvtt

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emotion-analyzer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    analyze = commands.add_parser("analyze", help="analyse video or audio files")
    analyze.add_argument(
        "paths", nargs="+", metavar="PATH", help="files, folders of them, or an http(s) URL (with --server)"
    )
    analyze.add_argument("--json", action="store_true", help="print the result as the API's JSON")
    analyze.add_argument(
        "--jsonl", action="store_true", help="one JSON line per file: {path, result} or {path, error}"
    )
    analyze.add_argument(
        "--vtt",
        type=Path,
        metavar="VTT",
        help="write WebVTT subtitles: each utterance with its emotion",
    )
    analyze.add_argument("--srt", type=Path, metavar="SRT", help="the same subtitles as SubRip")
    analyze.add_argument(
        "--plot", type=Path, metavar="PNG", help="draw the utterances over time into this file"
    )
    analyze.add_argument(
        "--speakers",
        type=_people,
        metavar="N",
        help=f"how many people speak (1-{MAX_SPEAKERS}), when you know; else it is estimated",
    )
    here = analyze.add_argument_group("in this process (without --server)")
    here.add_argument(
        "--bundle",
        default=os.environ.get("EA_BUNDLE_URI", "var/bundles/default"),
        help="model bundle directory (default: %(default)s)",
    )
    here.add_argument(
        "--whisper",
        default=os.environ.get("EA_WHISPER_MODEL", "base"),
        help="Whisper model: base, tiny.en or a CTranslate2 directory (default: %(default)s)",
    )
    here.add_argument(
        "--no-translate",
        action="store_true",
        help="list the words of speech that is not English as missing instead of reading Whisper's "
        "English translation of them",
    )
    here.add_argument(
        "--no-speakers", action="store_true", help="do not tell speakers apart (utterances carry no speaker)"
    )
    here.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    here.add_argument("--cache-dir", type=Path, default=Path("var/cache"))
    remote = analyze.add_argument_group("through a server's REST API")
    remote.add_argument(
        "--server", default=os.environ.get("EA_SERVER"), help="the API's address (env EA_SERVER)"
    )
    remote.add_argument("--key", default=os.environ.get("EA_API_KEY"), help="an API key (env EA_API_KEY)")
    remote.add_argument(
        "--multipart",
        action="store_true",
        help="send the file in the analysis request instead of uploading it over a presigned URL",
    )
    remote.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds to wait for the result (default: %(default)s)"
    )
    return parser


def _people(value: str) -> int:
    try:
        people = int(value)
    except ValueError:
        people = 0
    if not 1 <= people <= MAX_SPEAKERS:
        raise argparse.ArgumentTypeError(f"a whole number from 1 to {MAX_SPEAKERS}, not {value!r}")
    return people


def _table(result: AnalysisResult) -> Table:
    speakers = f", {len(result.speakers)} speaker(s)" if result.speakers else ""
    table = Table(title=f"{len(result.utterances)} utterance(s){speakers}, model {result.model_version}")
    for column in ("#", "start", "end", "speaker", "text", "emotion", "sentiment"):
        table.add_column(column, overflow="fold")
    for u in result.utterances:
        emotion, sentiment = u.emotions[0], u.sentiments[0]
        table.add_row(
            str(u.index),
            f"{u.start_time:.2f}",
            f"{u.end_time:.2f}",
            u.speaker or "—",
            u.text or "—",
            f"{emotion.label.value} {emotion.confidence:.2f}",
            f"{sentiment.label.value} {sentiment.confidence:.2f}",
        )
    return table


class Failure(NamedTuple):
    """A file that could not be analysed: its exit code, and the error's stable code and message."""

    exit_code: int
    code: str
    message: str


Analyze = Callable[[Path], "AnalysisResult | Failure"]


def _analyzer_here(args: argparse.Namespace, err: Console) -> Analyze:
    """Loads the models once; the function it gives analyses one file in this process."""
    # heavy imports only here, so `--help` and the remote mode need no torch
    from transformers.utils import logging as transformers_logging

    from analyzer.pipeline import InProcessAnalyzer, PipelineOptions
    from shared.media.container import MediaError
    from shared.transcription import WordsPolicy

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # we show our own progress
    with err.status("loading models…"):
        analyzer = InProcessAnalyzer(
            PipelineOptions(
                bundle_uri=args.bundle,
                whisper_model=args.whisper,
                cache_dir=args.cache_dir,
                device=args.device,
                words=WordsPolicy(translate=not args.no_translate),
                diarize=not args.no_speakers,
            )
        )

    def analyze_one(path: Path) -> AnalysisResult | Failure:
        with err.status(f"{path.name}…") as status:

            def progress(stage: Stage, message: str) -> None:
                status.update(f"[bold]{path.name} {stage.value}[/]: {message}…")
                err.log(f"{path.name} {stage.value}: {message}")

            try:
                return analyzer.analyze(path, progress, speakers=args.speakers)
            except MediaError as exc:
                return Failure(EXIT_BAD_INPUT, exc.code.value, exc.message)

    return analyze_one


def _analyzer_remote(
    args: argparse.Namespace, err: Console
) -> Callable[[Path | str], "AnalysisResult | Failure"]:
    from analyzer.remote import RemoteAnalysisError, RemoteOptions, analyze_remotely

    options = RemoteOptions(
        server=args.server,
        key=args.key,
        presigned=not args.multipart,
        timeout_s=args.timeout,
        speakers=args.speakers,
    )

    def analyze_one(source: Path | str) -> AnalysisResult | Failure:
        try:
            return analyze_remotely(source, options, err)
        except RemoteAnalysisError as exc:
            return Failure(exc.exit_code, exc.code, exc.message)

    return analyze_one


MEDIA_SUFFIXES: Final = frozenset(
    {
        ".mp4",
        ".mov",
        ".m4v",
        ".mkv",
        ".webm",
        ".avi",
        ".mp3",
        ".m4a",
        ".wav",
        ".flac",
        ".ogg",
        ".opus",
        ".aac",
    }
)


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given; folders as the media files under them (by suffix), sorted. Missing paths stay, to be
    reported as such."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
        else:
            out.append(path)
    return out


def _title(source: str) -> str:
    """A plot's title: the file's name, or the last part of a URL's path."""
    return source.rstrip("/").rsplit("/", 1)[-1] or source


def _plot(result: AnalysisResult, args: argparse.Namespace, err: Console) -> int:
    from analyzer.timeline import PlotUnavailableError, plot_timeline

    try:
        plot_timeline(result, args.plot, title=_title(args.paths[0]))
    except PlotUnavailableError as exc:
        err.print(f"[red]error:[/] {exc}")
        return EXIT_FAILED
    err.log(f"timeline: {args.plot}")
    return 0


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def analyze(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    if any(is_url(source) for source in args.paths):
        return _analyze_url(args, err)
    paths = expand_paths([Path(source) for source in args.paths])
    if not paths:
        err.print("[red]error:[/] no video or audio files there")
        return EXIT_BAD_INPUT
    batch = args.jsonl or len(paths) > 1
    if batch and (args.plot or args.json or args.vtt or args.srt):
        err.print("[red]error:[/] --plot, --vtt, --srt and --json take one file; several go with --jsonl")
        return EXIT_BAD_INPUT
    if args.server and not args.key:
        err.print("[red]error:[/] an API key is needed with --server: --key or EA_API_KEY")
        return EXIT_BAD_INPUT
    if not batch and not paths[0].is_file():
        err.print(f"[red]error:[/] {paths[0]} is not a file")
        return EXIT_BAD_INPUT
    analyze_one = _analyzer_remote(args, err) if args.server else _analyzer_here(args, err)
    if batch:
        return _analyze_batch(paths, analyze_one)
    return _report(analyze_one(paths[0]), args, err)


def _report(outcome: "AnalysisResult | Failure", args: argparse.Namespace, err: Console) -> int:
    """One file's outcome: the error, or the result as a table or JSON, and the files asked for."""
    if isinstance(outcome, Failure):
        err.print(f"[red]error ({outcome.code}):[/] {outcome.message}")
        return outcome.exit_code
    if args.json:
        sys.stdout.write(outcome.model_dump_json(indent=2) + "\n")
    else:
        Console().print(_table(outcome))
        for missing in outcome.missing_modalities:
            Console().print(f"[yellow]{missing.modality.value} missing:[/] {missing.reason}")
    _write_subtitles(outcome, args, err)
    return _plot(outcome, args, err) if args.plot else 0


def _analyze_url(args: argparse.Namespace, err: Console) -> int:
    """One URL, which the server fetches: the in-process analyser reads local files only."""
    if len(args.paths) > 1 or args.jsonl:
        err.print("[red]error:[/] a URL is analysed on its own, without other paths or --jsonl")
        return EXIT_BAD_INPUT
    if not args.server or not args.key:
        err.print("[red]error:[/] a URL is fetched and analysed by a server: give --server and --key")
        return EXIT_BAD_INPUT
    outcome = _analyzer_remote(args, err)(args.paths[0])
    return _report(outcome, args, err)


def _write_subtitles(result: AnalysisResult, args: argparse.Namespace, err: Console) -> None:
    for path, render in ((args.vtt, to_webvtt), (args.srt, to_srt)):
        if path is not None:
            path.write_text(render(result), encoding="utf-8")
            err.log(f"subtitles: {path}")


def _analyze_batch(paths: list[Path], analyze_one: Analyze) -> int:
    """One JSON line per file, in order, each flushed as it is done; the exit code is the worst one."""
    worst = 0
    for path in paths:
        if not path.is_file():
            outcome: AnalysisResult | Failure = Failure(EXIT_BAD_INPUT, "not_a_file", f"{path} is not a file")
        else:
            outcome = analyze_one(path)
        if isinstance(outcome, Failure):
            worst = max(worst, outcome.exit_code)
            line = {"path": str(path), "error": {"code": outcome.code, "message": outcome.message}}
        else:
            line = {"path": str(path), "result": outcome.model_dump(mode="json")}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
    return worst


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "analyze":
        return analyze(args)
    return 1


if __name__ == "__main__":
    sys.exit(main())
