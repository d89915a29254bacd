"""Real voices told apart by Resemblyzer's pretrained encoder: two actors of the kit taking turns, and one
actor alone (RAVDESS's neutral statements, 16 kHz FLAC); a file's utterances labelled, and one that holds
two voices cut where the second starts, at the word gap Whisper's word times give."""

from pathlib import Path

import numpy as np
import pytest

from emotion_contract.events import Span
from shared.assets import whisper_model_dir
from shared.media.decode import load_audio
from shared.model.speaker_encoder import SAMPLE_RATE, SpeakerEncoder, embed_speech, load_speaker_encoder
from shared.model.speakers import Speakers, cluster_speakers
from shared.transcription import Transcriber, Word
from training.diarization_eval import speech_of

pytestmark = pytest.mark.integration
RAVDESS = Path(__file__).parents[2] / ".." / "shared" / "data" / "voice" / "ravdess"


def take(actor: int, statement: int, repetition: int) -> np.ndarray:
    return load_audio(RAVDESS / f"03-01-01-01-{statement:02d}-{repetition:02d}-{actor:02d}.flac")


@pytest.fixture(scope="module")
def encoder() -> SpeakerEncoder:
    return load_speaker_encoder()


def test_two_voices_taking_turns_are_two_speakers_with_their_turns(encoder: SpeakerEncoder) -> None:
    turns = [(1, 1, 1), (2, 1, 1), (1, 2, 1), (2, 2, 1), (1, 1, 2), (2, 2, 2)]
    embeddings = np.stack([embed_speech(encoder, take(*turn)) for turn in turns])
    assert cluster_speakers(embeddings) == ["S1", "S2", "S1", "S2", "S1", "S2"]


def test_one_voice_is_one_speaker(encoder: SpeakerEncoder) -> None:
    turns = [(3, 1, 1), (3, 2, 1), (3, 1, 2), (3, 2, 2)]
    embeddings = np.stack([embed_speech(encoder, take(*turn)) for turn in turns])
    assert cluster_speakers(embeddings) == ["S1"] * 4
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5) and (embeddings >= 0).all()


SILENCE = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)


def _conversation(takes: list[np.ndarray]) -> tuple[np.ndarray, list[Span]]:
    """The takes' speech one after another with half a second between, and a span over each."""
    audio, spans, at = [], [], 0
    for i, take_audio in enumerate(takes):
        speech = speech_of(take_audio)
        spans.append(
            Span(index=i, start=at / SAMPLE_RATE, end=(at + len(speech)) / SAMPLE_RATE, text=f"turn {i}")
        )
        audio += [speech, SILENCE]
        at += len(speech) + len(SILENCE)
    return np.concatenate(audio), spans


@pytest.fixture(scope="module")
def whisper(tmp_path_factory: pytest.TempPathFactory) -> Transcriber:
    return Transcriber(whisper_model_dir("base", tmp_path_factory.mktemp("whisper")))


@pytest.fixture(scope="module")
def speakers(encoder: SpeakerEncoder) -> Speakers:
    return Speakers(encoder)


def test_a_files_utterances_get_the_voice_that_speaks_them(speakers: Speakers) -> None:
    audio, spans = _conversation([take(1, 1, 1), take(2, 1, 1), take(1, 2, 1), take(2, 2, 1), take(1, 1, 2)])
    labelled = speakers.label(audio, spans)
    assert [s.speaker for s in labelled] == ["S1", "S2", "S1", "S2", "S1"]
    assert [s.text for s in labelled] == [s.text for s in spans]  # nothing cut without words to cut at
    assert [s.speaker for s in speakers.label(audio, spans, speakers=1)] == ["S1"] * 5


def test_an_utterance_that_changes_voice_is_cut_at_the_change(
    speakers: Speakers, whisper: Transcriber
) -> None:
    first, second = speech_of(take(1, 2, 2)), speech_of(take(2, 1, 2))
    audio, spans = _conversation([take(1, 1, 1), take(2, 2, 1), take(1, 2, 1), take(2, 1, 1)])
    # The last turn: actor 1 and actor 2 without a pause, one utterance as Whisper might give it.
    joined = np.concatenate([first, second])
    at = len(audio) / SAMPLE_RATE
    heard, _ = whisper.words(joined)
    words = [Word(at + w.start, at + w.end, w.word) for w in heard]
    change_s = at + len(first) / SAMPLE_RATE
    spans.append(
        Span(index=4, start=at, end=at + len(joined) / SAMPLE_RATE, text="".join(w.word for w in words))
    )
    audio = np.concatenate([audio, joined])
    labelled = speakers.label(audio, spans, [[] for _ in spans[:-1]] + [words])
    assert [s.speaker for s in labelled] == ["S1", "S2", "S1", "S2", "S1", "S2"]
    before, after = labelled[-2], labelled[-1]
    assert abs(before.end - change_s) < 0.6 and abs(after.start - change_s) < 0.6
    assert f"{before.text} {after.text}".split() == spans[-1].text.split()
