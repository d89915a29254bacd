"""The conversations the speaker measurement is made of, and how a turn counts as attributed."""

from pathlib import Path

import numpy as np

from emotion_contract.events import Span
from shared.media.decode import load_audio
from shared.model.speaker_encoder import SAMPLE_RATE
from training.diarization_eval import attribution, draw_conversations, halves, speech_bounds, speech_of
from training.diarization_whole import Recording, Turned, error_frames, turn_labels
from training.voice_data import CorpusClip

VOICES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "voice"
RAVDESS_TAKE = VOICES / "ravdess" / "03-01-05-02-01-01-01.flac"


def _clips() -> list[CorpusClip]:
    return [
        CorpusClip(Path(f"{corpus}-{person}-{take}.flac"), corpus, f"{corpus}-{person:02d}", 0, (0,))
        for corpus, people in (("ravdess", 8), ("emodb", 6))
        for person in range(people)
        for take in range(5)
    ]


def test_attribution_takes_the_best_one_to_one_mapping_of_labels_to_people() -> None:
    assert attribution(["a", "b", "a", "b"], ["S2", "S1", "S2", "S1"]) == 1.0
    assert attribution(["a", "b", "a", "b"], ["S1", "S1", "S1", "S1"]) == 0.5  # one label: one person right
    assert attribution(["a", "a", "a"], ["S1", "S2", "S3"]) == 1 / 3


def test_conversations_stay_in_one_corpus_within_their_half_and_everyone_speaks() -> None:
    clips = _clips()
    choosing, scored = halves(clips)
    assert not choosing & scored and len(choosing) == 7 and len(scored) == 7
    conversations = draw_conversations(clips, scored, 60, np.random.default_rng(0))
    for conversation in conversations:
        speakers = {t.speaker for t in conversation.turns}
        assert speakers <= scored and {s.split("-")[0] for s in speakers} == {conversation.corpus}
        assert 6 <= len(conversation.turns) <= 12 and 1 <= conversation.people <= 4
    assert {c.people for c in conversations} == {1, 2, 3, 4}
    assert any(t.quick for c in conversations for t in c.turns)


def test_a_turn_is_the_takes_speech_without_the_silence_around_it() -> None:
    take = load_audio(RAVDESS_TAKE)
    first, last = speech_bounds(take)
    # RAVDESS takes open with ~0.7 s of silence: a quick turn cut from the take's start would be silence.
    assert first > 0.4 * SAMPLE_RATE and last - first > 1.0 * SAMPLE_RATE and last <= len(take)
    assert len(speech_of(take)) == last - first
    assert speech_bounds(np.zeros(SAMPLE_RATE, dtype=np.float32)) == (0, SAMPLE_RATE)  # nothing voiced


def _span(start: float, end: float, speaker: str) -> Span:
    return Span(index=0, start=start, end=end, text="", speaker=speaker)


def test_the_error_rate_counts_missed_false_and_confused_frames_outside_the_collars() -> None:
    recording = Recording(
        audio_s=10.0,
        turns=[Turned(speaker="a", start=1.0, end=4.0), Turned(speaker="b", start=5.0, end=9.0)],
    )
    exact = [_span(1.0, 4.0, "S1"), _span(5.0, 9.0, "S2")]
    assert error_frames(recording, exact)[1:] == (0, 0, 0)
    assert turn_labels(recording, exact) == ["S1", "S2"]
    # One label for both: it maps to b, who spoke longer, so a's frames are confused (outside the collars).
    speech, missed, false_alarm, confusion = error_frames(recording, [_span(1.0, 9.0, "S1")])
    assert speech == 250 + 350 and missed == 0 and false_alarm == 50 and confusion == 250
    # Nothing said where b spoke: missed; a label over the silence before: a false alarm.
    _, missed, false_alarm, _ = error_frames(recording, [_span(0.0, 4.0, "S1")])
    assert missed == 350 and false_alarm == 75
    assert turn_labels(recording, [_span(0.0, 4.0, "S1")]) == ["S1", None]
