"""The whole pipeline in one process, with no broker, database or object store: the same stage functions
the services run, called in a row. Used by `emotion-analyzer analyze` and by the benchmark."""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, Field

from emotion_contract.events import Stage
from emotion_contract.results import AnalysisResult
from shared.assets import whisper_model_dir
from shared.media.container import MediaError
from shared.media.decode import load_audio
from shared.model.bundle import open_bundle
from shared.model.inference import AudioFeaturizer, FusionPredictor, TextFeaturizer, VideoFeaturizer
from shared.model.speaker_encoder import load_speaker_encoder
from shared.model.speakers import Speakers
from shared.speech_pass import FileStates
from shared.stages import encode_audio_file, fuse, track_video_file, transcribe_file_with_states
from shared.transcription import Transcriber, WordsPolicy, threads_beside

ProgressCallback = Callable[[Stage, str], None]
T = TypeVar("T")


class PipelineOptions(BaseModel):
    bundle_uri: str = "var/bundles/default"
    whisper_model: str = Field(
        default="base", description="'base', 'tiny.en' or a CTranslate2 model directory"
    )
    cache_dir: Path = Path("var/cache")
    device: str = "cpu"
    max_duration_s: float = 3 * 3600.0
    run_untrained: bool = False
    whisper_threads: int | None = Field(
        default=None,
        ge=0,
        description="CTranslate2 threads of the transcriber; None: every core but the one the work beside "
        "it uses (shared.transcription.threads_beside)",
    )
    words: WordsPolicy = Field(
        default_factory=WordsPolicy, description="How speech that is not English reaches the words model"
    )
    diarize: bool = Field(
        default=True, description="Tell speakers apart: each utterance gets its `speaker` (S1, S2, …)"
    )
    voice_threads: int = Field(
        default=1,
        ge=0,
        description="CTranslate2 threads of the voice's Whisper encoder, which runs beside the transcription "
        "(on 2 cores, one each: more makes both wait on each other)",
    )


class Timings(BaseModel):
    seconds: dict[str, float] = Field(default_factory=dict)


class InProcessAnalyzer:
    def __init__(self, options: PipelineOptions) -> None:
        self.options = options
        bundle = open_bundle(options.bundle_uri)
        self.bundle_version = bundle.version
        whisper_threads = options.whisper_threads
        self.transcriber = Transcriber(
            whisper_model_dir(options.whisper_model, options.cache_dir / "whisper"),
            device=options.device,
            cpu_threads=threads_beside() if whisper_threads is None else whisper_threads,
            words=options.words,
        )
        self.text = TextFeaturizer(bundle, options.device)
        self.video = VideoFeaturizer(bundle, options.device, run_untrained=options.run_untrained)
        self.audio = AudioFeaturizer(
            bundle, options.device, run_untrained=options.run_untrained, cpu_threads=options.voice_threads
        )
        self.fusion = FusionPredictor(bundle, options.device)
        self.speakers = Speakers(load_speaker_encoder()) if options.diarize else None
        # One Whisper pass: where the voice reads the transcriber's model, the transcription's states serve.
        self.shared_pass = self.audio.reads_states_of(self.transcriber.model_dir)

    def analyze(
        self,
        path: Path,
        progress: ProgressCallback | None = None,
        timings: Timings | None = None,
        *,
        speakers: int | None = None,
    ) -> AnalysisResult:
        """As the services do it: the picture is followed beside the transcription, whose Whisper encoder
        states the voice then pools per utterance (or, where the voice reads another Whisper, its own states
        computed beside), and all is fused. Each stage's own seconds go into `timings`; the picture's
        overlap the transcription's.
        `speakers`: how many people speak, when known (else estimated)."""
        timings = timings if timings is not None else Timings()

        def timed(name: Stage, work: Callable[[], T]) -> T:
            started = time.perf_counter()
            try:
                return work()
            finally:
                timings.seconds[name.value] = time.perf_counter() - started

        def states() -> FileStates | None:
            try:
                return self.audio.file_states(load_audio(path, max_duration_s=self.options.max_duration_s))
            except MediaError:
                return None  # the transcription reports what is wrong with the file

        # One thread beside the transcription: the face, after the voice's states where the voice reads
        # another Whisper than the transcriber (two more threads on 2 cores slowed the transcription more
        # than they saved).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="analyze") as beside:
            voice_states = None if self.shared_pass else beside.submit(states)
            video_track = beside.submit(
                timed,
                Stage.ENCODE_VIDEO,
                lambda: track_video_file(
                    path, featurizer=self.video, max_duration_s=self.options.max_duration_s
                ),
            )
            if progress:
                progress(Stage.TRANSCRIBE, "transcribing speech and following the face")
            transcript, transcribed_states = timed(
                Stage.TRANSCRIBE,
                lambda: transcribe_file_with_states(
                    path,
                    transcriber=self.transcriber,
                    text=self.text,
                    max_duration_s=self.options.max_duration_s,
                    speakers=self.speakers,
                    people=speakers,
                    keep_states=self.shared_pass,
                ),
            )
            if progress:
                progress(
                    Stage.ENCODE_AUDIO, f"encoding the voice of {len(transcript.utterances)} utterance(s)"
                )
            file_states = transcribed_states if voice_states is None else voice_states.result()
            audio = timed(
                Stage.ENCODE_AUDIO,
                lambda: encode_audio_file(
                    path,
                    media=transcript.media,
                    utterances=transcript.utterances,
                    featurizer=self.audio,
                    speech_found=transcript.speech_found,
                    states=file_states if transcript.speech_found else None,
                ),
            )
            if progress:
                progress(Stage.ENCODE_VIDEO, "waiting for the face track")
            track = video_track.result()
        if progress:
            progress(Stage.FUSE, "fusing modalities")
        return timed(
            Stage.FUSE,
            lambda: fuse(
                transcript=transcript,
                video_track=track,
                audio=audio,
                predictor=self.fusion,
                bundle_version=self.bundle_version,
            ),
        )
