"""The label sets every part of the system agrees on (MELD's), in the order the model heads emit them."""

from enum import StrEnum
from typing import Annotated, Final

from pydantic import Field


class Emotion(StrEnum):
    ANGER = "anger"
    DISGUST = "disgust"
    FEAR = "fear"
    JOY = "joy"
    NEUTRAL = "neutral"
    SADNESS = "sadness"
    SURPRISE = "surprise"


class Sentiment(StrEnum):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


class Modality(StrEnum):
    TEXT = "text"
    VIDEO = "video"
    AUDIO = "audio"


class WordsSource(StrEnum):
    """What the words model read for an utterance: the English transcript, Whisper's English translation of
    speech in another language, or nothing (the reason is the text modality's)."""

    TRANSCRIPT = "transcript"
    TRANSLATION = "translation"
    MISSING = "missing"


EMOTIONS: Final[tuple[str, ...]] = tuple(e.value for e in Emotion)
SENTIMENTS: Final[tuple[str, ...]] = tuple(s.value for s in Sentiment)
MODALITIES: Final[tuple[str, ...]] = tuple(m.value for m in Modality)

SPEAKER_PATTERN: Final = r"^S[1-9][0-9]*$"
"""A speaker's label: S1, S2, … in the order people first speak in a file."""
MAX_SPEAKERS: Final = 20
"""The most people a request may say speak in one file."""
SpeakerCount = Annotated[int, Field(ge=1, le=MAX_SPEAKERS)]
"""How many people a request says speak in a file."""
