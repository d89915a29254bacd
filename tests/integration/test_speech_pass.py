"""One Whisper encoder pass serves the language, the transcript, the translation and the voice: the voice's
answers from the transcription's states are the ones its own pass over the file gives."""

from pathlib import Path

import numpy as np
import pytest

from shared.assets import whisper_model_dir
from shared.media.decode import load_audio
from shared.model.bundle import load_state
from shared.model.voice import VoiceHead, WhisperStates, states_nbytes
from shared.transcription import Transcriber, WordsPolicy

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ENGLISH = DATA / "talking" / "vr_face_1.mp4"
JAVANESE = DATA / "av" / "javanese" / "clips" / "01-01-05_01.mp4"  # Malay to Whisper base, at 0.96
VOICE_WEIGHTS = Path(__file__).resolve().parents[2] / "training" / "weights" / "voice-v2.safetensors"


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return whisper_model_dir("base", Path("var/cache/whisper"))


@pytest.fixture(scope="module")
def transcriber(whisper_dir: Path) -> Transcriber:
    return Transcriber(whisper_dir, cpu_threads=2, words=WordsPolicy(min_language_probability=0.5))


@pytest.fixture(scope="module")
def voice(whisper_dir: Path) -> tuple[VoiceHead, WhisperStates]:
    head = VoiceHead()
    load_state(head, VOICE_WEIGHTS)
    return head.eval(), WhisperStates(whisper_dir, cpu_threads=2)


def _require(*paths: Path) -> None:
    for path in paths:
        if not path.is_file():
            pytest.skip(f"{path} is not there (shared data is laid beside the repository)")


@pytest.mark.parametrize("clip", [ENGLISH, JAVANESE], ids=["english", "translated"])
def test_one_encoder_pass_serves_the_transcript_and_the_voice_as_its_own_pass_would(
    transcriber: Transcriber, voice: tuple[VoiceHead, WhisperStates], clip: Path
) -> None:
    _require(clip, VOICE_WEIGHTS)
    audio = load_audio(clip)
    before = transcriber.encoder_runs
    transcript, states = transcriber.transcribe_with_states(audio)
    # A clip of a few seconds is one window: encoded once for its language, its words, their translation
    # (the Javanese clip) and the voice's states.
    assert transcript.spans and states is not None
    assert transcriber.encoder_runs - before == 1
    if clip == JAVANESE:
        assert transcript.language != "en" and any(span.translation for span in transcript.spans)
    head, own = voice
    spans = [(span.start, span.end) for span in transcript.spans]
    shared = head.span_probabilities(states, spans)
    alone = head.span_probabilities(own.speech_states(audio), spans)
    np.testing.assert_allclose(shared, alone, atol=1e-5)
    assert states.nbytes == states_nbytes(len(audio))


def test_a_long_file_is_read_in_pieces_whose_states_lie_where_they_were_heard(
    transcriber: Transcriber, voice: tuple[VoiceHead, WhisperStates]
) -> None:
    """Six clips with 8 s of silence between them: 88 s in pieces of at most 30 s, the silences absent."""
    _require(ENGLISH)
    speech = load_audio(ENGLISH)
    silence = np.zeros(8 * 16_000, dtype=np.float32)
    audio = np.concatenate([part for _ in range(6) for part in (speech, silence)])
    before = transcriber.encoder_runs
    transcript, states = transcriber.transcribe_with_states(audio)
    assert states is not None and states.nbytes == states_nbytes(len(audio))
    runs = transcriber.encoder_runs - before
    assert 6 <= runs <= 8, runs  # a window each (one more where a decode leaves part of it for a second)
    per_second = 50
    gaps = [
        states.present[int((k * 14.13 + 6.8) * per_second) : int((k * 14.13 + 13.5) * per_second)].mean()
        for k in range(5)
    ]
    assert max(gaps) == 0.0, gaps  # 8 s apart, no piece holds the silence between two clips
    heard = [
        states.present[int((k * 14.13 + 1) * per_second) : int((k * 14.13 + 5) * per_second)]
        for k in range(6)
    ]
    assert all(part.all() for part in heard)
    assert len(transcript.spans) >= 6 and all(
        states.present[int(span.start * per_second) : int(span.end * per_second)].any()
        for span in transcript.spans
    )
    head, own = voice
    spans = [(span.start, span.end) for span in transcript.spans]
    np.testing.assert_allclose(
        head.span_probabilities(states, spans),
        head.span_probabilities(own.speech_states(audio), spans),
        atol=1e-5,
    )


def test_silence_has_no_pieces_and_costs_no_encoder_run(transcriber: Transcriber) -> None:
    before = transcriber.encoder_runs
    transcript, states = transcriber.transcribe_with_states(np.zeros(5 * 16_000, dtype=np.float32))
    assert transcript.spans == [] and states is None and transcriber.encoder_runs == before
