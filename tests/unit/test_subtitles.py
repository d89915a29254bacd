"""The result as subtitles, read back by an independent WebVTT and SubRip reader (webvtt-py)."""

import io

import webvtt

from emotion_contract.results import AnalysisResult, UtteranceResult, emotion_scores, sentiment_scores
from emotion_contract.subtitles import label_line, to_srt, to_webvtt

JOYFUL = emotion_scores([0.02, 0.01, 0.02, 0.82, 0.08, 0.02, 0.03])
ANGRY = emotion_scores([0.71, 0.09, 0.05, 0.01, 0.1, 0.02, 0.02])


def utterance(index: int, start: float, end: float, text: str, angry: bool = False) -> UtteranceResult:
    return UtteranceResult(
        index=index,
        start_time=start,
        end_time=end,
        text=text,
        emotions=ANGRY if angry else JOYFUL,
        sentiments=sentiment_scores([0.7, 0.2, 0.1] if angry else [0.06, 0.3, 0.64]),
    )


RESULT = AnalysisResult(
    model_version="1.0.0-test",
    duration_s=3725.5,
    utterances=[
        utterance(0, 0.0, 2.38, "I got the job!"),
        utterance(1, 2.5, 4.0, "Wait -->  what?\nYou <b>lied</b> & said so", angry=True),
        utterance(2, 3723.25, 3725.5, ""),  # past the hour, no words (no speech found there)
    ],
)


def test_webvtt_has_a_cue_per_utterance_with_its_times_words_and_labels() -> None:
    captions = webvtt.from_string(to_webvtt(RESULT), strict=True).captions
    assert [(c.start, c.end) for c in captions] == [
        ("00:00:00.000", "00:00:02.380"),
        ("00:00:02.500", "00:00:04.000"),
        ("01:02:03.250", "01:02:05.500"),
    ]
    assert captions[0].text.splitlines() == ["I got the job!", "[joy 82% · positive 64%]"]
    assert captions[1].text.splitlines() == [
        "Wait --&gt; what? You &lt;b&gt;lied&lt;/b&gt; &amp; said so",
        "[anger 71% · negative 70%]",
    ]
    assert captions[2].text == "[joy 82% · positive 64%]"
    assert [c.identifier for c in captions] == ["1", "2", "3"]


def test_srt_carries_the_same_cues() -> None:
    captions = webvtt.from_buffer(io.StringIO(to_srt(RESULT)), format="srt").captions
    assert [(c.start, c.end) for c in captions] == [
        ("00:00:00.000", "00:00:02.380"),
        ("00:00:02.500", "00:00:04.000"),
        ("01:02:03.250", "01:02:05.500"),
    ]
    # SubRip has no escapes: the words go as they are (a player may read <b> as bold).
    assert captions[1].raw_text.splitlines() == [
        "Wait --> what? You <b>lied</b> & said so",
        "[anger 71% · negative 70%]",
    ]


def test_a_span_of_no_length_still_shows_and_an_empty_result_is_a_valid_file() -> None:
    instant = RESULT.model_copy(update={"utterances": [utterance(0, 1.0, 1.0, "Hm.")]})
    [caption] = webvtt.from_string(to_webvtt(instant)).captions
    assert (caption.start, caption.end) == ("00:00:01.000", "00:00:01.001")
    empty = RESULT.model_copy(update={"utterances": []})
    assert webvtt.from_string(to_webvtt(empty)).captions == []
    assert to_srt(empty) == ""


def test_the_label_line_is_the_fused_top_emotion_and_sentiment() -> None:
    assert label_line(RESULT.utterances[1]) == "anger 71% · negative 70%"


SPOKEN = RESULT.model_copy(
    update={
        "utterances": [
            RESULT.utterances[0].model_copy(update={"speaker": "S1"}),
            RESULT.utterances[1].model_copy(update={"speaker": "S2"}),
        ]
    }
)


def test_webvtt_cues_are_their_speakers_voice_spans() -> None:
    vtt = to_webvtt(SPOKEN)
    assert "<v S1>I got the job!\n[joy 82%" in vtt
    captions = webvtt.from_string(vtt, strict=True).captions
    assert [c.voice for c in captions] == ["S1", "S2"]  # an independent reader finds each cue's voice
    assert captions[1].text.splitlines()[1] == "[anger 71% · negative 70%]"


def test_srt_cues_start_with_their_speaker() -> None:
    captions = webvtt.from_buffer(io.StringIO(to_srt(SPOKEN)), format="srt").captions
    assert [c.raw_text.splitlines()[0] for c in captions] == [
        "S1: I got the job!",
        "S2: Wait --> what? You <b>lied</b> & said so",
    ]
    assert "S1" not in to_srt(RESULT) and "<v" not in to_webvtt(RESULT)  # not told apart: no speaker shown
