"""One Whisper encoder pass serves the language, the transcript, the translation and the voice: the voice's
answers from the transcription's states are the ones its own pass over the file gives, in-process and as
the stack's audio encoder reads them from the transcript."""

from pathlib import Path

import numpy as np
import pytest

from shared.assets import whisper_model_dir
from shared.feature_matrix import to_array
from shared.media.decode import load_audio
from shared.model.bundle import LocalBundle, load_state, open_bundle
from shared.model.inference import AudioFeaturizer, TextFeaturizer
from shared.model.voice import MARGINS_S, VoiceHead, WhisperStates, states_nbytes
from shared.speech_pass import model_print
from shared.stages import check_media, encode_audio_file, encode_voice_inputs, transcribe_file
from shared.transcription import Transcriber, WordsPolicy
from tests.bundle_fixtures import bundle, bundle_dir

__all__ = ["bundle", "bundle_dir"]

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ENGLISH = DATA / "talking" / "vr_face_1.mp4"
JAVANESE = DATA / "av" / "javanese" / "clips" / "01-01-05_01.mp4"  # Malay to Whisper base, at 0.96
VOICE_WEIGHTS = Path(__file__).resolve().parents[2] / "training" / "weights" / "voice-v2.safetensors"
# `make model`'s bundle (what `make test` builds first): its voice is the Whisper-state head.
DEFAULT_BUNDLE = Path(__file__).resolve().parents[2] / "var" / "bundles" / "default"


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


@pytest.fixture(scope="module")
def default_voice() -> AudioFeaturizer:
    _require(DEFAULT_BUNDLE / "manifest.json")
    return AudioFeaturizer(open_bundle(str(DEFAULT_BUNDLE), components=("audio",)), cpu_threads=2)


def test_the_transcript_brings_the_inputs_the_audio_encoder_reads_the_voice_from_without_a_second_pass(
    transcriber: Transcriber, bundle: LocalBundle, default_voice: AudioFeaturizer, whisper_dir: Path
) -> None:
    _require(JAVANESE)
    media = check_media(JAVANESE, max_duration_s=600)
    transcript = transcribe_file(
        JAVANESE, transcriber=transcriber, text=TextFeaturizer(bundle), max_duration_s=600, voice_inputs=True
    )
    inputs = transcript.voice_inputs
    assert inputs is not None and inputs.whisper == model_print(whisper_dir)
    assert inputs.margins_s == list(MARGINS_S) and inputs.pooled.rows == len(transcript.utterances)
    assert default_voice.reads_inputs(inputs)
    # What the audio encoder answers from them is what its own pass over the file gives.
    from_inputs = encode_voice_inputs(
        inputs, media=media, utterances=transcript.utterances, featurizer=default_voice
    )
    own = encode_audio_file(
        JAVANESE,
        media=media,
        utterances=transcript.utterances,
        featurizer=default_voice,
        speech_found=transcript.speech_found,
    )
    assert from_inputs.audio.present == own.audio.present and all(own.audio.present)
    assert from_inputs.voice_emotions is not None and own.voice_emotions is not None
    np.testing.assert_allclose(to_array(from_inputs.voice_emotions), to_array(own.voice_emotions), atol=1e-5)
    # Not asked for: none; another Whisper's states or other widenings: not read.
    text = TextFeaturizer(bundle)
    plain = transcribe_file(JAVANESE, transcriber=transcriber, text=text, max_duration_s=600)
    assert plain.voice_inputs is None
    assert not default_voice.reads_inputs(inputs.model_copy(update={"whisper": "another"}))
    assert not default_voice.reads_inputs(inputs.model_copy(update={"margins_s": [0.0, 0.5, 1.0]}))
    with pytest.raises(ValueError, match="utterances"):
        encode_voice_inputs(inputs, media=media, utterances=[], featurizer=default_voice)


def test_a_voice_that_is_no_whisper_head_reads_no_inputs(
    transcriber: Transcriber, bundle: LocalBundle
) -> None:
    """The test bundle's voice is the mel-spectrogram CNN: the audio encoder reads the file itself."""
    _require(JAVANESE)
    transcript = transcribe_file(
        JAVANESE, transcriber=transcriber, text=TextFeaturizer(bundle), max_duration_s=600, voice_inputs=True
    )
    assert transcript.voice_inputs is not None
    assert not AudioFeaturizer(bundle, run_untrained=True).reads_inputs(transcript.voice_inputs)
