"""`emotion-analyzer analyze --server URL --key KEY`: one file through a running server's API, with the same
progress display and output as the in-process command."""

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
from rich.console import Console

from emotion_analyzer.client import EmotionAnalyzer
from emotion_analyzer.errors import ApiError, WaitTimeout
from emotion_analyzer.models import Analysis, AnalysisStatus
from emotion_contract.events import Stage
from emotion_contract.results import AnalysisResult

# What the in-process command says at each stage, so that both modes read alike.
STAGE_MESSAGES: Final = {
    Stage.UPLOAD: "uploading",
    Stage.TRANSCRIBE: "transcribing speech",
    Stage.ENCODE_VIDEO: "encoding video",
    Stage.ENCODE_AUDIO: "encoding voice",
    Stage.FUSE: "fusing modalities",
}
EXIT_REFUSED: Final = 2
EXIT_UNAVAILABLE: Final = 1


@dataclass(frozen=True)
class RemoteOptions:
    server: str
    key: str
    presigned: bool = True
    timeout_s: float = 3600.0
    speakers: int | None = None


class RemoteAnalysisError(Exception):
    """The server refused or failed the analysis, or could not be reached; `exit_code` is the command's."""

    def __init__(self, code: str, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.exit_code = exit_code


def _size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _refusal(error: ApiError) -> RemoteAnalysisError:
    exit_code = EXIT_UNAVAILABLE if error.status >= 500 else EXIT_REFUSED
    return RemoteAnalysisError(error.code, error.message, exit_code)


def analyze_remotely(source: Path | str, options: RemoteOptions, console: Console) -> AnalysisResult:
    """Upload and analyse the file at `source` (or have the server fetch it, for an http(s) URL) through the
    API; its result, or RemoteAnalysisError."""
    try:
        with EmotionAnalyzer(options.server, options.key) as api, console.status("connecting…") as display:

            def uploaded(sent: int, total: int) -> None:
                share = sent / total if total else 1.0
                display.update(f"[bold]upload[/]: {_size(sent)} of {_size(total)} ({share:.0%})…")

            def moved(analysis: Analysis) -> None:
                if analysis.status is AnalysisStatus.QUEUED:
                    message = "waiting for the pipeline"
                elif analysis.done or analysis.stage is None:
                    return
                else:
                    message = STAGE_MESSAGES.get(analysis.stage, analysis.stage.value)
                name = analysis.stage.value if analysis.stage is not None else "queue"
                display.update(f"[bold]{name}[/]: {message}…")
                console.log(f"{name}: {message}")

            if isinstance(source, str):
                console.log(f"fetch: {source}, by the server")
                created = api.analyze_url(source, speakers=options.speakers)
            else:
                console.log(f"upload: {source.name}, {_size(source.stat().st_size)}")
                created = api.analyze_file(
                    source, presigned=options.presigned, progress=uploaded, speakers=options.speakers
                )
            console.log(f"analysis {created.id} at {options.server}")
            finished = api.wait(created.id, options.timeout_s, on_status=moved)
    except ApiError as exc:
        raise _refusal(exc) from exc
    except WaitTimeout as exc:
        raise RemoteAnalysisError("timeout", str(exc), EXIT_UNAVAILABLE) from exc
    except httpx.HTTPError as exc:
        raise RemoteAnalysisError("unreachable", f"{options.server}: {exc}", EXIT_UNAVAILABLE) from exc
    if finished.status is AnalysisStatus.FAILED or finished.result is None:
        error = finished.error
        stage = f" at {error.stage.value}" if error is not None and error.stage is not None else ""
        raise RemoteAnalysisError(
            error.code if error else "failed",
            f"the analysis failed{stage}: {error.message if error else 'no reason given'}",
            EXIT_REFUSED,
        )
    return finished.result
