"""Real voices told apart by Resemblyzer's pretrained encoder: two actors of the kit taking turns, and one
actor alone (RAVDESS's neutral statements, 16 kHz FLAC)."""

from pathlib import Path

import numpy as np
import pytest

from shared.media.decode import load_audio
from shared.model.speaker_encoder import SpeakerEncoder, embed_speech, load_speaker_encoder
from shared.model.speakers import cluster_speakers

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
