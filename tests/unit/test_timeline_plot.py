"""The timeline picture drawn from a hand-built result: a real PNG, sized to the result, in the emotions'
colours where the bands are."""

import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.image import imread

from analyzer.timeline import EMOTION_COLOURS, PlotUnavailableError, plot_timeline
from emotion_contract.labels import EMOTIONS, Emotion, Modality
from emotion_contract.results import (
    AnalysisResult,
    ModalityPrediction,
    UtteranceResult,
    emotion_scores,
    sentiment_scores,
    summarise_speakers,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def peaked(emotion: Emotion, peak: float = 0.8) -> list[float]:
    """Head-ordered probabilities with `peak` on one emotion and the rest shared evenly."""
    rest = (1.0 - peak) / (len(EMOTIONS) - 1)
    return [peak if label == emotion.value else rest for label in EMOTIONS]


def utterance(index: int, start: float, end: float, text: str, emotion: Emotion) -> UtteranceResult:
    return UtteranceResult(
        index=index,
        start_time=start,
        end_time=end,
        text=text,
        emotions=emotion_scores(peaked(emotion)),
        sentiments=sentiment_scores([0.2, 0.3, 0.5]),
    )


def result_of(*utterances: UtteranceResult) -> AnalysisResult:
    end = max((u.end_time for u in utterances), default=1.0)
    return AnalysisResult(
        model_version="test-2", duration_s=end + 0.5, language="en", utterances=list(utterances)
    )


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE and header[12:16] == b"IHDR"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def share_of_colour(pixels: np.ndarray, colour: str) -> float:
    """The share of the picture's pixels in this colour (within antialiasing distance)."""
    distance = np.abs(pixels[..., :3] - np.array(to_rgb(colour))).max(axis=-1)
    return float((distance < 0.02).mean())


def test_a_timeline_is_a_png_with_a_band_per_utterance_in_its_emotions_colours(tmp_path: Path) -> None:
    result = result_of(
        utterance(0, 0.0, 2.4, "My biggest weakness is asking for help when I need it.", Emotion.JOY),
        utterance(1, 2.9, 4.0, "Oh really?", Emotion.ANGER),
        utterance(
            2,
            4.2,
            9.5,
            "I can't believe you did that after everything we went through, " * 4,
            Emotion.SADNESS,
        ),
    )
    path = plot_timeline(result, tmp_path / "out" / "timeline.png", title="talk.mp4")

    assert path == tmp_path / "out" / "timeline.png"
    width, height = png_size(path)
    assert 1000 <= width <= 5000 and 400 <= height <= 1000
    assert 20_000 < path.stat().st_size < 2_000_000
    pixels = imread(path)
    for emotion in (Emotion.JOY, Emotion.ANGER, Emotion.SADNESS):
        assert share_of_colour(pixels, EMOTION_COLOURS[emotion]) > 0.02, emotion
    # The dominant emotions fill their bands: disgust is a small slice of each.
    assert share_of_colour(pixels, EMOTION_COLOURS[Emotion.DISGUST]) < share_of_colour(
        pixels, EMOTION_COLOURS[Emotion.SADNESS]
    )


def test_the_picture_widens_with_the_number_of_utterances(tmp_path: Path) -> None:
    few = plot_timeline(result_of(utterance(0, 0.0, 1.0, "hi", Emotion.NEUTRAL)), tmp_path / "few.png")
    many = result_of(*(utterance(i, i * 1.0, i * 1.0 + 0.8, f"line {i}", Emotion.FEAR) for i in range(30)))
    assert png_size(plot_timeline(many, tmp_path / "many.png"))[0] > png_size(few)[0]


def test_a_result_without_utterances_still_draws(tmp_path: Path) -> None:
    path = plot_timeline(result_of(), tmp_path / "empty.png", title="silence.wav")
    assert png_size(path)[0] > 0


def test_without_matplotlib_the_error_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry in sys.modules makes the import fail as it does where matplotlib is not installed.
    for name in [name for name in sys.modules if name.startswith("matplotlib")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(PlotUnavailableError, match=r"emotion-analyzer\[ml\]"):
        plot_timeline(result_of(utterance(0, 0.0, 1.0, "hi", Emotion.JOY)), tmp_path / "never.png")
    assert not (tmp_path / "never.png").exists()


def test_each_modality_gets_its_own_row_beneath_the_fused_one(tmp_path: Path) -> None:
    fused = utterance(0, 0.0, 3.0, "My biggest weakness is asking for help.", Emotion.NEUTRAL)
    with_modalities = fused.model_copy(
        update={
            "modalities": {
                Modality.VIDEO: ModalityPrediction(
                    available=True, emotions=emotion_scores(peaked(Emotion.SURPRISE, 0.9))
                ),
                Modality.AUDIO: ModalityPrediction(available=False, reason="no speech was found"),
                Modality.TEXT: ModalityPrediction(
                    available=True, emotions=emotion_scores(peaked(Emotion.ANGER, 0.9))
                ),
            }
        }
    )
    plain = plot_timeline(result_of(fused), tmp_path / "fused.png")
    rows = plot_timeline(result_of(with_modalities), tmp_path / "rows.png")
    # Two rows more (face and words; the voice, missing everywhere, gets none), each in its own colours.
    assert png_size(rows)[1] - png_size(plain)[1] == 2 * 140
    pixels, fused_only = imread(rows), imread(plain)
    for emotion in (Emotion.SURPRISE, Emotion.ANGER):
        colour = EMOTION_COLOURS[emotion]
        assert share_of_colour(pixels, colour) > share_of_colour(fused_only, colour) + 0.02, emotion


def test_each_speaker_gets_a_lane_of_their_utterances(tmp_path: Path) -> None:
    said = [
        utterance(0, 0.0, 2.0, "Where were you?", Emotion.ANGER),
        utterance(1, 2.5, 4.0, "Out.", Emotion.NEUTRAL),
        utterance(2, 4.5, 7.0, "All night?", Emotion.ANGER),
    ]
    alone = plot_timeline(result_of(*said), tmp_path / "alone.png")
    told = [u.model_copy(update={"speaker": s}) for u, s in zip(said, ["S1", "S2", "S1"], strict=True)]
    apart = result_of(*told)
    apart = apart.model_copy(update={"speakers": summarise_speakers(apart.utterances)})
    lanes = plot_timeline(apart, tmp_path / "lanes.png")
    assert png_size(lanes)[1] > png_size(alone)[1]  # taller by the lanes
    anger = EMOTION_COLOURS[Emotion.ANGER]
    # S1's lane repeats their two angry utterances in anger's colour, beside the fused bands.
    extra = share_of_colour(imread(lanes), anger) * np.prod(png_size(lanes))
    assert extra > 1.05 * share_of_colour(imread(alone), anger) * np.prod(png_size(alone))
