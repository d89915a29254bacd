"""What the words model reads: the language Whisper detected and how sure it was decide it."""

import pytest

from emotion_contract.events import Span
from emotion_contract.labels import WordsSource
from shared.transcription import WordsPolicy, assign_translations, words_source

POLICY = WordsPolicy(translate=True, min_language_probability=0.5)


def test_english_is_read_as_transcribed() -> None:
    assert words_source("en", 0.97, POLICY) == (WordsSource.TRANSCRIPT, None)
    assert words_source("en", None, POLICY).source is WordsSource.TRANSCRIPT  # a language given, not detected


def test_another_language_is_read_through_the_translation() -> None:
    assert words_source("ms", 0.93, POLICY) == (WordsSource.TRANSLATION, None)


@pytest.mark.parametrize("language", ["en", "id"])
def test_a_language_below_the_bar_gives_missing_words_with_the_reason(language: str) -> None:
    decision = words_source(language, 0.29, POLICY)
    assert decision.source is WordsSource.MISSING
    assert decision.missing_reason is not None
    assert "uncertain" in decision.missing_reason and f"'{language}' at 0.29" in decision.missing_reason


def test_translation_switched_off_or_impossible_gives_missing_words() -> None:
    off = words_source("de", 0.99, WordsPolicy(translate=False))
    assert off.source is WordsSource.MISSING and "switched off" in (off.missing_reason or "")
    english_only = words_source("de", 0.99, POLICY, can_translate=False)
    assert english_only.source is WordsSource.MISSING and "English-only" in (
        english_only.missing_reason or ""
    )
    assert words_source(None, None, POLICY).source is WordsSource.MISSING


def test_the_bar_is_a_probability() -> None:
    with pytest.raises(ValueError):
        WordsPolicy(min_language_probability=1.5)


def _spans(*bounds: tuple[float, float]) -> list[Span]:
    return [Span(index=i, start=s, end=e, text=f"u{i}") for i, (s, e) in enumerate(bounds)]


def test_translated_segments_go_to_the_utterance_they_overlap_most() -> None:
    spans = _spans((0.0, 2.0), (3.0, 5.0), (8.0, 9.0))
    translated = [(0.1, 1.5, " Hello."), (1.8, 3.4, "there"), (3.5, 5.2, "friend."), (12.0, 13.0, "far")]
    # "there" overlaps the first 0.2 s and the second 0.4 s; "far" is 3 s from the last utterance.
    assert assign_translations(spans, translated) == ["Hello.", "there friend.", None]


def test_a_translated_segment_between_utterances_goes_to_the_nearest_within_reach() -> None:
    spans = _spans((0.0, 1.0), (4.0, 5.0))
    assert assign_translations(spans, [(1.5, 2.0, "near the first")]) == ["near the first", None]
    assert assign_translations(spans, [(2.2, 2.4, "too far")], reach_s=1.0) == [None, None]
    assert assign_translations([], [(0.0, 1.0, "nobody")]) == []
    assert assign_translations(spans, [(0.0, 1.0, "  ")]) == [None, None]
