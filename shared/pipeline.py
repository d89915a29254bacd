"""The whole pipeline in one process, with no broker, database or object store: the same stage functions
the services run, called in a row. Used by `emotion-analyzer analyze` and by the benchmark."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, Field

from shared.assets import whisper_model_dir
from shared.events import Stage
from shared.model.bundle import open_bundle
from shared.model.inference import AudioFeaturizer, FusionPredictor, TextFeaturizer, VideoFeaturizer
from shared.results import AnalysisResult
from shared.stages import encode_audio_file, encode_video_file, fuse, transcribe_file
from shared.transcription import Transcriber

ProgressCallback = Callable[[Stage, str], None]


class PipelineOptions(BaseModel):
    bundle_uri: str = "var/bundles/default"
    whisper_model: str = Field(
        default="base", description="'base', 'tiny.en' or a CTranslate2 model directory"
    )
    cache_dir: Path = Path("var/cache")
    device: str = "cpu"
    max_duration_s: float = 3 * 3600.0
    run_untrained: bool = False


class Timings(BaseModel):
    seconds: dict[str, float] = Field(default_factory=dict)


class InProcessAnalyzer:
    def __init__(self, options: PipelineOptions) -> None:
        self.options = options
        bundle = open_bundle(options.bundle_uri)
        self.bundle_version = bundle.version
        self.transcriber = Transcriber(
            whisper_model_dir(options.whisper_model, options.cache_dir / "whisper"), device=options.device
        )
        self.text = TextFeaturizer(bundle, options.device)
        self.video = VideoFeaturizer(bundle, options.device, run_untrained=options.run_untrained)
        self.audio = AudioFeaturizer(bundle, options.device, run_untrained=options.run_untrained)
        self.fusion = FusionPredictor(bundle, options.device)

    def analyze(
        self, path: Path, progress: ProgressCallback | None = None, timings: Timings | None = None
    ) -> AnalysisResult:
        timings = timings if timings is not None else Timings()

        @contextmanager
        def stage(name: Stage, message: str) -> Iterator[None]:
            if progress:
                progress(name, message)
            started = time.perf_counter()
            yield
            timings.seconds[name.value] = time.perf_counter() - started

        with stage(Stage.TRANSCRIBE, "transcribing speech"):
            transcript = transcribe_file(
                path, transcriber=self.transcriber, text=self.text, max_duration_s=self.options.max_duration_s
            )
        with stage(Stage.ENCODE_VIDEO, f"encoding video of {len(transcript.utterances)} utterance(s)"):
            video = encode_video_file(
                path, media=transcript.media, utterances=transcript.utterances, featurizer=self.video
            )
        with stage(Stage.ENCODE_AUDIO, "encoding voice"):
            audio = encode_audio_file(
                path,
                media=transcript.media,
                utterances=transcript.utterances,
                featurizer=self.audio,
                speech_found=transcript.speech_found,
            )
        with stage(Stage.FUSE, "fusing modalities"):
            return fuse(
                transcript=transcript,
                video=video,
                audio=audio,
                predictor=self.fusion,
                bundle_version=self.bundle_version,
            )
