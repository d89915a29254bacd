"""Speech to utterances with faster-whisper (CTranslate2, int8 on CPU).

An utterance is one Whisper segment: its text and its times in the audio. Silence (Silero VAD) is cut
before decoding, which is both faster and what keeps Whisper from inventing words in music or noise; the
speech is decoded in pieces of at most 30 s, each encoded once (`shared.speech_pass`).

The words model reads English. The language Whisper detects, and how sure it is, decide what it reads
(`words_source`): English speech as transcribed; another language through Whisper's own English translation
(its `translate` task, a second decoding of the same audio; each utterance keeps its original text); and
nothing, with the reason, where the language is too uncertain or translation is off. Whisper base takes the
kit's Javanese speech for Malay or Indonesian, at probabilities from 0.12 to 0.96; the six English talking
videos came out at 0.87-0.998.
"""

import functools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from emotion_contract.events import Span
from emotion_contract.labels import WordsSource
from shared.speech_pass import FileStates, Piece, counted, iter_pieces, model_print, to_numpy, window_features

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import Segment, TranscriptionInfo, TranscriptionOptions
    from faster_whisper.transcribe import Word as FasterWord

SAMPLE_RATE: Final = 16_000
# Long audio is looked through for speech in pieces of about this length: Silero VAD and the spectrogram
# both take the whole input at once, and for a 3-hour file that took 12.5 GB (scripts/long_file.py), three
# times the transcriber's pod. A piece of 10 minutes takes well under 1 GB.
CHUNK_S: Final = 600.0
# Each piece ends at the quietest moment within this many seconds of its nominal end, so that no word is
# cut in two (Silero's VAD drops that silence anyway).
CUT_SEARCH_S: Final = 5.0
_ENERGY_WINDOW_S: Final = 0.2
# Whisper's fallback to sampling at higher temperatures, where a greedy decode's mean log-probability is
# under -1, retried 36 of 57 windows of the kit's Javanese takes at all six temperatures and took three
# quarters of their transcription (40 takes: 188 s with it, 51 s greedy); on the six English talking videos
# and 40 RAVDESS clips greedy gave the same words (scripts/transcription_quality.py).
GREEDY: Final = (0.0,)


def chunk_bounds(samples: npt.NDArray[np.float32], chunk_s: float = CHUNK_S) -> list[tuple[int, int]]:
    """[start, end) sample ranges that cover `samples` in order, each about `chunk_s` long (the last up to
    10 % longer), cut at the quietest 0.2 s near each nominal end."""
    total, size = len(samples), int(chunk_s * SAMPLE_RATE)
    search, window = int(CUT_SEARCH_S * SAMPLE_RATE), int(_ENERGY_WINDOW_S * SAMPLE_RATE)
    bounds: list[tuple[int, int]] = []
    start = 0
    while total - start > size * 1.1:
        low = max(start + size // 2, start + size - search)
        high = min(total, start + size + search)
        region = samples[low:high]
        frames = len(region) // window
        energy = np.square(region[: frames * window].reshape(frames, window)).mean(axis=1)
        cut = low + int(np.argmin(energy)) * window + window // 2
        bounds.append((start, cut))
        start = cut
    bounds.append((start, total))
    return bounds


ENGLISH: Final = "en"
# Whisper base was 0.87-0.998 sure of English on the six English talking videos, and took three of the kit's
# Javanese clips for English at 0.12, 0.33 and 0.52: at 0.5 one of them was read as English.
MIN_LANGUAGE_PROBABILITY: Final = 0.6
# Translated segments are Whisper's own cut of the speech, not the transcript's: each goes to the utterance
# it overlaps most, or to the nearest one within this many seconds.
TRANSLATION_REACH_S: Final = 1.0


class WordsPolicy(BaseModel):
    """How speech that is not English reaches the (English) words model."""

    translate: bool = Field(
        default=True,
        description="Read Whisper's English translation of speech in another language (a second decoding "
        "pass); off, such words are listed as missing",
    )
    min_language_probability: float = Field(
        default=MIN_LANGUAGE_PROBABILITY,
        ge=0.0,
        le=1.0,
        description="Below this, Whisper's guess of the language is too uncertain for its words to be read",
    )


class WordsDecision(NamedTuple):
    source: WordsSource
    missing_reason: str | None = None


NO_SPEECH_FOUND: Final = WordsDecision(WordsSource.MISSING, "no speech was found")


def words_source(
    language: str | None, probability: float | None, policy: WordsPolicy, *, can_translate: bool = True
) -> WordsDecision:
    """What the words model reads of speech Whisper took for `language` with `probability`."""
    if language is None:
        return NO_SPEECH_FOUND
    sure = 1.0 if probability is None else probability
    if sure < policy.min_language_probability:
        return WordsDecision(
            WordsSource.MISSING,
            f"the spoken language is uncertain (Whisper: {language!r} at {sure:.2f}, below the "
            f"{policy.min_language_probability:.2f} its words need)",
        )
    if language == ENGLISH:
        return WordsDecision(WordsSource.TRANSCRIPT)
    if not policy.translate:
        return WordsDecision(
            WordsSource.MISSING, f"the speech is in {language!r}, and translating it is switched off"
        )
    if not can_translate:
        return WordsDecision(
            WordsSource.MISSING, f"the speech is in {language!r}, and the Whisper model is English-only"
        )
    return WordsDecision(WordsSource.TRANSLATION)


def assign_translations(
    spans: Sequence[Span],
    translated: Sequence[tuple[float, float, str]],
    reach_s: float = TRANSLATION_REACH_S,
) -> list[str | None]:
    """Each utterance's English: the translated segments (start, end, text) that fall to it, in order; None
    for an utterance no translated segment fell to."""
    parts: list[list[str]] = [[] for _ in spans]
    for start, end, text in translated:
        if not text.strip() or not spans:
            continue
        overlaps = [min(end, s.end) - max(start, s.start) for s in spans]
        best = max(range(len(spans)), key=lambda i: overlaps[i])
        if overlaps[best] <= 0:
            gaps = [max(s.start - end, start - s.end) for s in spans]
            best = min(range(len(spans)), key=lambda i: gaps[i])
            if gaps[best] > reach_s:
                continue
        parts[best].append(text.strip())
    return [" ".join(p) if p else None for p in parts]


class Word(NamedTuple):
    """A word Whisper heard, with its times (in the file, in a `Transcript`)."""

    start: float
    end: float
    word: str


class Transcript(BaseModel):
    language: str | None = Field(
        description="ISO 639-1 code Whisper detected (or was given); None for silence"
    )
    language_probability: float | None = Field(
        default=None, description="How sure Whisper was of the language; 1 when it was given"
    )
    words: WordsDecision = Field(
        default=NO_SPEECH_FOUND, description="What the words model reads of the spans"
    )
    duration_s: float = Field(ge=0.0, description="Length of the audio that was transcribed")
    spans: list[Span] = Field(description="The utterances in time order; empty when no speech was found")
    span_words: list[list[Word]] = Field(
        default_factory=list,
        description="Per span, its words with their times in the file (empty lists with word timestamps off)",
    )
    translated: list[tuple[float, float, str]] = Field(
        default_factory=list,
        description="Whisper's translated segments (start, end, English), from which the spans' translations "
        "were assigned; empty unless the words are read through translation",
    )


def threads_beside(side_threads: int = 1) -> int:
    """CTranslate2 threads for a transcriber that shares this machine's cores with `side_threads` threads of
    other work (the face track and the voice's states run beside it): the other cores, at least one.

    Measured on 2 cores with the 65 s bench video: Whisper base alone took 4.1-4.9 s with CTranslate2's
    default 4 threads and 4.6-5.0 s with one, but beside the face track and the voice its 4 waiting threads
    slowed it to 6.2-6.5 s, and the whole analysis with it."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - side_threads)


def load_whisper(model_dir: Path, *, device: str = "cpu", cpu_threads: int = 0) -> "WhisperModel":
    """A CTranslate2 Whisper model from a local directory: int8 on CPU; float16 on a GPU ("cuda:N"), where
    CTranslate2 runs it natively. The transcriber and the voice encoder load it the same way."""
    from faster_whisper import WhisperModel

    kind, _, index = device.partition(":")
    return WhisperModel(
        str(model_dir),
        device=kind,
        device_index=int(index or 0),
        compute_type="int8" if kind == "cpu" else "float16",
        cpu_threads=cpu_threads,
        local_files_only=True,
    )


def decoding_options(**chosen: Any) -> "TranscriptionOptions":
    """faster-whisper's options of a transcription: its `transcribe` defaults, with `chosen` over them."""
    import inspect

    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import TranscriptionOptions

    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(WhisperModel.transcribe).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    defaults["temperatures"] = defaults["temperature"]
    fields = TranscriptionOptions.__dataclass_fields__
    return TranscriptionOptions(**{name: chosen.get(name, defaults.get(name)) for name in fields})


class Transcriber:
    """Holds one loaded Whisper model; create it once per process (loading takes ~0.3 s, ~150 MB for base)."""

    def __init__(
        self,
        model_dir: Path,
        *,
        beam_size: int = 1,
        word_timestamps: bool = True,
        cpu_threads: int = 0,
        language: str | None = None,
        device: str = "cpu",
        chunk_s: float = CHUNK_S,
        words: WordsPolicy | None = None,
        temperatures: Sequence[float] = GREEDY,
    ) -> None:
        """`beam_size` 1 (greedy) gave the same text as 5 on the talking-head samples, faster.
        `word_timestamps` trims each utterance to its first and last word instead of Whisper's coarse
        segment times, which otherwise swallow the pauses around it. `cpu_threads` 0 lets CTranslate2
        choose. `language` None detects it (English-only models always answer "en"). `words`: how speech
        that is not English reaches the words model. `temperatures`: Whisper's decoding temperatures, the
        later ones tried where a decode looks poor (greedy only by default: see GREEDY)."""
        if beam_size < 1:
            raise ValueError("beam_size must be at least 1")
        self.model_dir = Path(model_dir)
        self.beam_size = beam_size
        self.word_timestamps = word_timestamps
        self.language = language
        self.chunk_s = chunk_s
        self.words_policy = words or WordsPolicy()
        self.temperatures = tuple(temperatures)
        self._model = load_whisper(self.model_dir, device=device, cpu_threads=cpu_threads)
        self._encoder = counted(self._model)

    @property
    def encoder_runs(self) -> int:
        """How many times this transcriber's Whisper encoder has run (a window each)."""
        return self._encoder.calls

    @functools.cached_property
    def fingerprint(self) -> str:
        """Which Whisper this is (`model_print`): whose encoder states its transcriptions compute."""
        return model_print(self.model_dir)

    def transcribe(self, audio: npt.NDArray[np.float32]) -> Transcript:
        """`audio`: mono float32 samples at 16 kHz, as `shared.media.decode.load_audio` returns them."""
        return self.transcribe_with_states(audio, keep_states=False)[0]

    def transcribe_with_states(
        self, audio: npt.NDArray[np.float32], *, keep_states: bool = True
    ) -> tuple[Transcript, FileStates | None]:
        """The transcript, and the Whisper encoder states of the file's speech that decoded it (None without
        speech, or when not kept): each 30 s piece of speech is encoded once for the language, the
        transcript, the translation and the states."""
        samples = np.asarray(audio, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"expected mono samples (1-d), got shape {samples.shape}")
        duration_s = len(samples) / SAMPLE_RATE
        if len(samples) == 0:
            return Transcript(language=None, duration_s=0.0, spans=[]), None
        spans: list[Span] = []
        span_words: list[list[Word]] = []
        translated: list[tuple[float, float, str]] = []
        language, probability = self.language, None if self.language is None else 1.0
        decision: WordsDecision | None = None
        states: FileStates | None = None
        # VAD runs over pieces of the file of about 10 minutes, which bounds its memory on long files.
        for piece in iter_pieces(samples, chunk_bounds(samples, self.chunk_s)):
            speech = piece.audio(samples)
            encoded = self._encoder(window_features(self._model, speech))
            if keep_states:
                window = to_numpy(encoded)
                states = states or FileStates(len(samples), window.shape[-1])
                states.place(piece, window)
            # The file's language is the first piece's with words; later pieces are decoded in it.
            if decision is None or language is None:
                language, probability = self._language(encoded)
            found = len(spans)
            segments = self._decode_piece(speech, encoded, language=language)
            for segment in segments:  # a generator: decoding happens while iterating
                text = segment.text.strip()
                start, end = self._file_times(segment, piece)
                heard = [self._word(w, piece) for w in segment.words or []]
                if heard:  # the segment is its words, as faster-whisper makes it, bounded as they are
                    start, end = heard[0].start, max(w.end for w in heard)
                if text and end > start:
                    spans.append(Span(index=len(spans), start=start, end=end, text=text))
                    span_words.append(heard)
            if decision is None and len(spans) > found:
                decision = words_source(
                    language, probability, self.words_policy, can_translate=self._model.model.is_multilingual
                )
            if decision is not None and decision.source is WordsSource.TRANSLATION and len(spans) > found:
                english = self._decode_piece(
                    speech, encoded, language=language, task="translate", word_timestamps=False
                )
                for segment in english:
                    start, end = self._file_times(segment, piece)
                    translated.append((start, end, segment.text))
        if decision is not None and decision.source is WordsSource.TRANSLATION:
            spans = [
                span.model_copy(update={"translation": english})
                for span, english in zip(spans, assign_translations(spans, translated), strict=True)
            ]
        transcript = Transcript(
            language=language if spans else None,
            language_probability=probability if spans else None,
            words=decision or NO_SPEECH_FOUND,
            duration_s=duration_s,
            spans=spans,
            span_words=span_words,
            translated=translated,
        )
        return transcript, states if spans else None

    @staticmethod
    def _word(word: "FasterWord", piece: Piece) -> Word:
        start, end = piece.heard(piece.file_time(float(word.start)), piece.file_time(float(word.end)))
        return Word(start, end, word.word)

    def _language(self, encoded: Any) -> tuple[str, float]:
        """Whisper's guess of the language of an encoded window (English for an English-only model)."""
        if self.language is not None:
            return self.language, 1.0
        if not self._model.model.is_multilingual:
            return ENGLISH, 1.0
        token, probability = self._model.model.detect_language(encoded)[0][0]
        return str(token)[2:-2], float(probability)

    @staticmethod
    def _file_times(segment: "Segment", piece: Piece) -> tuple[float, float]:
        """A segment's times in the file. Whisper's last segment may run past the end of the piece; the audio
        is the truth (`Piece.file_time` clamps to it)."""
        start = piece.file_time(float(segment.start))
        return start, max(piece.file_time(float(segment.end)), start)

    def words(self, audio: npt.NDArray[np.float32]) -> tuple[list[Word], str | None]:
        """Every word with its times in `audio` (word timestamps on), and the language detected."""
        segments, info = self._decode(np.asarray(audio, dtype=np.float32), word_timestamps=True)
        words = [
            Word(start=float(w.start), end=float(w.end), word=w.word)
            for segment in segments
            for w in segment.words or []
        ]
        return words, info.language if words else None

    def _decode_piece(
        self,
        speech: npt.NDArray[np.float32],
        encoded: Any,
        *,
        language: str,
        task: str = "transcribe",
        word_timestamps: bool | None = None,
    ) -> Iterator["Segment"]:
        """The segments of one piece, decoded from its encoder output (faster-whisper encodes again only
        where the decoding leaves part of the piece for a second window)."""
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        tokenizer = Tokenizer(
            self._model.hf_tokenizer, self._model.model.is_multilingual, task=task, language=language
        )
        options = decoding_options(
            beam_size=self.beam_size,
            temperatures=list(self.temperatures),
            condition_on_previous_text=False,
            word_timestamps=self.word_timestamps if word_timestamps is None else word_timestamps,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        )
        features = self._model.feature_extractor(speech)
        segments: Iterator[Segment] = self._model.generate_segments(
            features, tokenizer, options, False, encoded
        )
        return segments

    def _decode(
        self,
        samples: npt.NDArray[np.float32],
        word_timestamps: bool | None = None,
        *,
        language: str | None = None,
        task: str = "transcribe",
    ) -> tuple[Iterator["Segment"], "TranscriptionInfo"]:
        decoded: tuple[Iterator[Segment], TranscriptionInfo] = self._model.transcribe(
            samples,
            language=language or self.language,
            task=task,
            beam_size=self.beam_size,
            temperature=list(self.temperatures),
            vad_filter=True,
            word_timestamps=self.word_timestamps if word_timestamps is None else word_timestamps,
            condition_on_previous_text=False,
        )
        return decoded
