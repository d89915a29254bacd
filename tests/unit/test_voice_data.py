"""Labels, speakers and masks of the kit's emotional speech, from the file names."""

from pathlib import Path

import numpy as np
import pytest

from emotion_contract.labels import EMOTIONS
from training.voice_augment import VARIANTS, codec_round_trip
from training.voice_data import EMODB_CLASSES, list_clips, parse_clip

VOICE = Path(__file__).resolve().parents[3] / "shared" / "data" / "voice"


def test_ravdess_names_give_emotion_speaker_and_calm_as_neutral() -> None:
    angry = parse_clip(Path("03-01-05-02-01-02-14.flac"))
    calm = parse_clip(Path("03-01-02-01-01-01-07.flac"))
    assert angry is not None and calm is not None
    assert (EMOTIONS[angry.label], angry.speaker, angry.intensity) == ("anger", "ravdess-14", "strong")
    assert EMOTIONS[calm.label] == "neutral" and len(calm.classes) == 7


def test_emodb_names_mask_surprise_and_leave_boredom_out() -> None:
    joy = parse_clip(Path("03a01Fa.flac"))
    assert joy is not None and (EMOTIONS[joy.label], joy.speaker) == ("joy", "emodb-03")
    assert EMOTIONS.index("surprise") not in joy.classes and joy.classes == EMODB_CLASSES
    assert parse_clip(Path("03a01La.flac")) is None  # boredom
    assert parse_clip(Path("talk.flac")) is None


@pytest.mark.skipif(not VOICE.is_dir(), reason="the kit's voice data is not beside the checkout")
def test_the_kit_holds_three_corpora_with_distinct_speakers() -> None:
    clips = list_clips(VOICE)
    speakers = {c.speaker for c in clips}
    assert {c.corpus for c in clips} == {"ravdess", "emodb", "javanese"}
    assert len([s for s in speakers if s.startswith("ravdess-")]) == 20
    assert len([s for s in speakers if s.startswith("emodb-")]) == 10
    assert sorted(s for s in speakers if s.startswith("javanese-")) == [f"javanese-0{n}" for n in range(1, 6)]
    assert not any(EMOTIONS[c.label] == "surprise" for c in clips if c.corpus == "emodb")
    javanese = [c for c in clips if c.corpus == "javanese"]
    assert len(javanese) == 840 and not any(EMOTIONS[c.label] == "disgust" for c in javanese)
    assert all(EMOTIONS.index("disgust") not in c.classes for c in javanese)


def test_a_javanese_take_is_named_actor_sentence_expression_take() -> None:
    clip = parse_clip(Path("03-02-04_07.flac"))
    assert clip is not None and clip.corpus == "javanese" and clip.speaker == "javanese-03"
    assert EMOTIONS[clip.label] == "surprise"
    assert parse_clip(Path("03-02-07_01.flac")) is None  # no such expression


def test_every_variant_keeps_speech_at_16_khz() -> None:
    t = np.arange(16_000) / 16_000
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    for name, variant in VARIANTS.items():
        out, factor = variant(tone, np.random.default_rng(0))
        assert out.dtype == np.float32 and np.isfinite(out).all(), name
        assert abs(len(out) - len(tone) / factor) <= 2, name
        assert 0.9 <= factor <= 1.1
    decoded = codec_round_trip(tone, "libopus", "16k")
    assert len(decoded) == len(tone) and np.corrcoef(decoded[2000:-2000], tone[2000:-2000])[0, 1] > 0.8
