"""The voice's Whisper states of a whole file: their size is known before they are computed, so the audio
encoder can tell which files' states are not worth computing ahead of the transcript."""

from pathlib import Path

import numpy as np
import pytest

from shared.assets import whisper_model_dir
from shared.model.voice import WhisperStates, state_frames, states_nbytes


@pytest.mark.parametrize("seconds", [0.5, 30.0, 61.3])
def test_the_predicted_size_is_what_the_whisper_encoder_gives(
    whisper_states: WhisperStates, seconds: float
) -> None:
    samples = np.random.default_rng(0).normal(0, 0.05, int(seconds * 16_000)).astype(np.float32)
    computed = whisper_states.window_states(samples)
    assert computed.nbytes == states_nbytes(len(samples)) and computed.shape == (
        state_frames(len(samples)),
        512,
    )
    # Filled in place, window by window: no frame is left unwritten (np.empty holds whatever was there).
    assert np.isfinite(computed).all() and np.abs(computed).sum(axis=1).min() > 0


@pytest.fixture(scope="module")
def whisper_states(tmp_path_factory: pytest.TempPathFactory) -> WhisperStates:
    return WhisperStates(whisper_model_dir("base", Path("var/cache/whisper")), cpu_threads=2)
