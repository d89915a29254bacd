"""`emotion-analyzer`: analyse a video or audio file in this process, no servers needed.

emotion-analyzer analyze talk.mp4            a table of utterances, with a progress display
emotion-analyzer analyze talk.mp4 --json     exactly the REST API's `result` object
"""

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from shared.events import Stage
from shared.results import AnalysisResult

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emotion-analyzer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    analyze = commands.add_parser("analyze", help="analyse one video or audio file in this process")
    analyze.add_argument("path", type=Path)
    analyze.add_argument("--json", action="store_true", help="print the result as the API's JSON")
    analyze.add_argument(
        "--bundle",
        default=os.environ.get("EA_BUNDLE_URI", "var/bundles/default"),
        help="model bundle directory (default: %(default)s)",
    )
    analyze.add_argument(
        "--whisper",
        default=os.environ.get("EA_WHISPER_MODEL", "base"),
        help="Whisper model: base, tiny.en or a CTranslate2 directory (default: %(default)s)",
    )
    analyze.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    analyze.add_argument("--cache-dir", type=Path, default=Path("var/cache"))
    return parser


def _table(result: AnalysisResult) -> Table:
    table = Table(title=f"{len(result.utterances)} utterance(s), model {result.model_version}")
    for column in ("#", "start", "end", "text", "emotion", "sentiment"):
        table.add_column(column, overflow="fold")
    for u in result.utterances:
        emotion, sentiment = u.emotions[0], u.sentiments[0]
        table.add_row(
            str(u.index),
            f"{u.start_time:.2f}",
            f"{u.end_time:.2f}",
            u.text or "—",
            f"{emotion.label.value} {emotion.confidence:.2f}",
            f"{sentiment.label.value} {sentiment.confidence:.2f}",
        )
    return table


def analyze(args: argparse.Namespace) -> int:
    # heavy imports only here, so `--help` is instant
    from transformers.utils import logging as transformers_logging

    from shared.media import MediaError
    from shared.pipeline import InProcessAnalyzer, PipelineOptions

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # we show our own progress

    err = Console(stderr=True)
    if not args.path.is_file():
        err.print(f"[red]error:[/] {args.path} is not a file")
        return EXIT_BAD_INPUT
    with err.status("loading models…") as status:
        analyzer = InProcessAnalyzer(
            PipelineOptions(
                bundle_uri=args.bundle,
                whisper_model=args.whisper,
                cache_dir=args.cache_dir,
                device=args.device,
            )
        )

        def progress(stage: Stage, message: str) -> None:
            status.update(f"[bold]{stage.value}[/]: {message}…")
            err.log(f"{stage.value}: {message}")

        try:
            result = analyzer.analyze(args.path, progress)
        except MediaError as exc:
            err.print(f"[red]error ({exc.code}):[/] {exc}")
            return EXIT_BAD_INPUT
    if args.json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        Console().print(_table(result))
        for missing in result.missing_modalities:
            Console().print(f"[yellow]{missing.modality.value} missing:[/] {missing.reason}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "analyze":
        return analyze(args)
    return 1


if __name__ == "__main__":
    sys.exit(main())
