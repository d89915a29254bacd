"""The voice inputs travel with the transcript only while the event stays far below the claim check's
largest body; past that the audio encoder reads the file itself."""

from shared.claim_check import MAX_BODY_BYTES
from shared.model.voice import MARGINS_S, POOLED_DIM
from shared.stages import VOICE_INPUTS_MAX_BYTES, voice_inputs_fit


def test_an_hour_of_talk_brings_its_inputs_and_a_longer_one_does_not_outgrow_the_claim_check() -> None:
    per_utterance = len(MARGINS_S) * POOLED_DIM * 4
    assert voice_inputs_fit(1200)  # an hour at one utterance every 3 s
    assert not voice_inputs_fit(3600)  # three hours of it
    # What fits, base64 in JSON (4/3), leaves most of the largest body to the rest of the transcript.
    largest = VOICE_INPUTS_MAX_BYTES // per_utterance
    assert voice_inputs_fit(largest) and not voice_inputs_fit(largest + 1)
    assert largest * per_utterance * 4 / 3 < MAX_BODY_BYTES / 2
