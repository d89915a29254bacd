"""Telling speakers apart, measured on conversations made of the kit's real voices (`make eval-speakers`).

    python -m training.diarization_eval [--voice-data ../shared/data/voice] [--conversations 300] [--json]
        [--talking ../shared/data/talking]

Each conversation draws one to four people from one corpus (RAVDESS actors, Emo-DB speakers, the Javanese
actors: the same room and microphone, the hard case), and 6 to 12 turns, each a take of the person whose
turn it is; a share of the turns are quick exchanges (the take's speech cut to 0.6-1.2 s) and a share go
back to the same speaker. A turn is the take's speech, from its first to its last voiced moment (Silero
VAD, as faster-whisper ships it): the transcriber's utterances are speech too, while the takes hold up to a
second of silence around it (RAVDESS ~0.7 s before the words), which a quick turn cut from the take's start
would have been made of. Every take is embedded once (`shared.model.speaker_encoder`, cached in
var/cache/speakers) and each conversation's turns clustered (`shared.model.speakers`).

The clustering threshold is chosen on conversations of the first half of each corpus's speakers and scored
on conversations of the other half, never on the speakers it was chosen on. Reported: per-turn attribution
(the share of turns whose label maps to their true speaker, under the best one-to-one mapping of labels to
people), the share of conversations with the right number of speakers, both by number of people, and
milliseconds to embed a second of speech. The turns are given (no segmentation): the error of splitting a
recording into turns is the transcriber's, measured with the whole analysis later.

With `--talking`, each video of the folder (one person talking in each of the kit's six) is transcribed and
its utterances labelled as the transcriber service does it (`Speakers.label`, cuts at changes of voice
included): the speakers found, the utterances cut, and the milliseconds of labelling per utterance.
"""

import argparse
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import torch
from faster_whisper.vad import VadOptions, get_speech_timestamps
from pydantic import BaseModel
from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped]

from shared.assets import whisper_model_dir
from shared.media.decode import load_audio
from shared.model.speaker_encoder import SAMPLE_RATE, embed_speech, load_speaker_encoder
from shared.model.speakers import Speakers, cluster_speakers
from shared.transcription import Transcriber
from training.voice_data import CorpusClip, list_clips

logger = logging.getLogger(__name__)
THRESHOLDS: Final = tuple(round(t, 3) for t in np.arange(0.15, 0.61, 0.025))
QUICK_SHARE: Final = 0.25
SAME_AGAIN_SHARE: Final = 0.15
SPEECH_PAD_S: Final = 0.1


@dataclass(frozen=True)
class Turn:
    stem: str
    speaker: str
    seconds: float
    quick: bool


@dataclass(frozen=True)
class Conversation:
    corpus: str
    turns: list[Turn]

    @property
    def people(self) -> int:
        return len({t.speaker for t in self.turns})


class Scores(BaseModel):
    conversations: int
    turn_attribution: float
    right_speaker_count: float
    by_people: dict[int, tuple[float, float]]  # people: (turn attribution, right count)


class TalkingRun(BaseModel):
    """One real video labelled as the transcriber labels it."""

    video: str
    utterances: int
    speakers: int
    cut: int = 0  # utterances more after labelling than Whisper gave
    speech_s: float
    ms_per_utterance: float


class JoinedRun(BaseModel):
    """The talking videos' sound one after another, without a pause, repeated to a minute (as `make bench`
    joins them): several real people in one recording."""

    seconds: float
    people: int
    utterances: int
    speakers: int
    cut: int
    attribution: float  # utterances given their person, under the best mapping of labels to people


class DiarizationReport(BaseModel):
    threshold: float
    chosen_on: Scores
    held_out: Scores
    held_out_by_corpus: dict[str, Scores]
    ms_per_speech_second: float
    takes_embedded: int = 0  # this run (the rest came from the cache)
    talking: list[TalkingRun] = []
    joined: JoinedRun | None = None


def label_videos(videos: Sequence[Path], whisper_dir: Path) -> list[TalkingRun]:
    transcriber = Transcriber(whisper_dir)
    speakers = Speakers(load_speaker_encoder())
    runs = []
    for video in videos:
        audio = load_audio(video)
        transcript = transcriber.transcribe(audio)
        started = time.perf_counter()
        labelled = speakers.label(audio, transcript.spans, transcript.span_words)
        spent = time.perf_counter() - started
        runs.append(
            TalkingRun(
                video=video.name,
                utterances=len(transcript.spans),
                speakers=len({s.speaker for s in labelled}),
                cut=len(labelled) - len(transcript.spans),
                speech_s=round(sum(s.end - s.start for s in transcript.spans), 1),
                ms_per_utterance=round(1000 * spent / max(1, len(transcript.spans)), 1),
            )
        )
    return runs


def label_joined(videos: Sequence[Path], whisper_dir: Path, min_seconds: float = 60.0) -> JoinedRun:
    pieces, who, at, n = [], [], 0.0, 0
    while at < min_seconds:
        audio = load_audio(videos[n % len(videos)])
        pieces.append(audio)
        who.append((at, at + len(audio) / SAMPLE_RATE, videos[n % len(videos)].stem))
        at += len(audio) / SAMPLE_RATE
        n += 1
    audio = np.concatenate(pieces)
    transcript = Transcriber(whisper_dir).transcribe(audio)
    labelled = Speakers(load_speaker_encoder()).label(audio, transcript.spans, transcript.span_words)

    def person(start: float, end: float) -> str:
        return max(who, key=lambda w: min(end, w[1]) - max(start, w[0]))[2]

    return JoinedRun(
        seconds=round(at, 1),
        people=len({w[2] for w in who}),
        utterances=len(transcript.spans),
        speakers=len({s.speaker for s in labelled}),
        cut=len(labelled) - len(transcript.spans),
        attribution=round(
            attribution([person(s.start, s.end) for s in labelled], [s.speaker or "" for s in labelled]), 4
        ),
    )


def draw_conversations(
    clips: Sequence[CorpusClip], speakers: set[str], n: int, rng: np.random.Generator
) -> list[Conversation]:
    by_corpus: dict[str, dict[str, list[CorpusClip]]] = {}
    for clip in clips:
        if clip.speaker in speakers:
            by_corpus.setdefault(clip.corpus, {}).setdefault(clip.speaker, []).append(clip)
    corpora = sorted(by_corpus)
    conversations = []
    for i in range(n):
        corpus = corpora[i % len(corpora)]
        people = sorted(by_corpus[corpus])
        k = int(rng.integers(1, min(4, len(people)) + 1))
        chosen = [str(p) for p in rng.choice(people, size=k, replace=False)]
        turns: list[Turn] = []
        current = chosen[0]
        for t in range(int(rng.integers(6, 13))):
            if t and k > 1 and rng.random() >= SAME_AGAIN_SHARE:
                current = str(rng.choice([p for p in chosen if p != current]))
            take = by_corpus[corpus][current][int(rng.integers(len(by_corpus[corpus][current])))]
            quick = bool(rng.random() < QUICK_SHARE)
            turns.append(Turn(take.stem, current, float(rng.uniform(0.6, 1.2)) if quick else 0.0, quick))
        missing = [p for p in chosen if p not in {t.speaker for t in turns}]
        for i, person in enumerate(missing):  # everyone drawn gets a turn: the last ones are theirs
            turns[-(i + 1)] = Turn(by_corpus[corpus][person][0].stem, person, 0.0, False)
        conversations.append(Conversation(corpus, turns))
    return conversations


def best_mapping(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Label → person, one to one, maximising the (person, label) pairs that agree."""
    people = sorted({p for p, _ in pairs})
    labels = sorted({label for _, label in pairs})
    if not people or not labels:
        return {}
    counts = np.zeros((len(labels), len(people)))
    for person, label in pairs:
        counts[labels.index(label), people.index(person)] += 1
    rows, cols = linear_sum_assignment(-counts)
    return {labels[i]: people[j] for i, j in zip(rows, cols, strict=True)}


def attribution(true: Sequence[str], predicted: Sequence[str]) -> float:
    """The share of turns whose predicted label is their person's under the best one-to-one mapping."""
    mapping = best_mapping(list(zip(true, predicted, strict=True)))
    return sum(mapping.get(p) == t for t, p in zip(true, predicted, strict=True)) / len(true)


def speech_bounds(audio: npt.NDArray[np.float32]) -> tuple[int, int]:
    """The samples from a take's first voiced moment to its last, `SPEECH_PAD_S` either side (the whole take
    where the VAD hears no speech)."""
    options = VadOptions(min_silence_duration_ms=300, speech_pad_ms=int(SPEECH_PAD_S * 1000))
    chunks = get_speech_timestamps(audio, options, sampling_rate=SAMPLE_RATE)
    if not chunks:
        return 0, len(audio)
    return int(chunks[0]["start"]), int(chunks[-1]["end"])


def speech_of(audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    first, last = speech_bounds(audio)
    return audio[first:last]


class Embeddings:
    """Each take embedded once, whole and cut to its quick-exchange lengths."""

    def __init__(self, clips: Sequence[CorpusClip], cache: Path) -> None:
        self.paths = {c.stem: c.path for c in clips}
        self.cache = cache
        self.embedded = 0
        self.encoder = load_speaker_encoder()
        self._store: dict[str, npt.NDArray[np.float32]] = {}
        if cache.is_file():
            with np.load(cache) as data:
                self._store = {k: data[k] for k in data.files}

    def of(self, turn: Turn) -> npt.NDArray[np.float32]:
        key = f"{turn.stem}@{turn.seconds:.2f}"
        if key not in self._store:
            audio = speech_of(load_audio(self.paths[turn.stem]))
            if turn.quick:
                audio = audio[: int(turn.seconds * SAMPLE_RATE)]
            self._store[key] = embed_speech(self.encoder, audio)
            self.embedded += 1
        return self._store[key]

    def save(self) -> None:
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(self.cache, **self._store)  # type: ignore[arg-type]


def score(conversations: Sequence[Conversation], embeddings: Embeddings, threshold: float) -> Scores:
    right_turns, right_count = [], []
    by_people: dict[int, list[tuple[float, float]]] = {}
    for conversation in conversations:
        vectors = np.stack([embeddings.of(t) for t in conversation.turns])
        seconds = [t.seconds or 3.0 for t in conversation.turns]
        predicted = cluster_speakers(vectors, seconds, threshold=threshold)
        true = [t.speaker for t in conversation.turns]
        turns = attribution(true, predicted)
        count = float(len(set(predicted)) == conversation.people)
        right_turns.append(turns)
        right_count.append(count)
        by_people.setdefault(conversation.people, []).append((turns, count))
    return Scores(
        conversations=len(conversations),
        turn_attribution=round(float(np.mean(right_turns)), 4),
        right_speaker_count=round(float(np.mean(right_count)), 4),
        by_people={
            k: (round(float(np.mean([a for a, _ in v])), 4), round(float(np.mean([c for _, c in v])), 4))
            for k, v in sorted(by_people.items())
        },
    )


def embedding_cost(embeddings: Embeddings, sample: Sequence[CorpusClip]) -> float:
    """Milliseconds to embed a second of speech, on one thread, measured afresh on `sample`."""
    audio = [load_audio(clip.path) for clip in sample]
    started = time.perf_counter()
    for wav in audio:
        embed_speech(embeddings.encoder, wav)
    seconds = sum(len(wav) for wav in audio) / SAMPLE_RATE
    return round(1000 * (time.perf_counter() - started) / seconds, 2)


def halves(clips: Sequence[CorpusClip]) -> tuple[set[str], set[str]]:
    """Each corpus's speakers split in two by name: the first half chooses, the second is scored."""
    first, second = set(), set()
    for corpus in sorted({c.corpus for c in clips}):
        people = sorted({c.speaker for c in clips if c.corpus == corpus})
        first |= set(people[: len(people) // 2])
        second |= set(people[len(people) // 2 :])
    return first, second


def main(argv: list[str] | None = None) -> DiarizationReport:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--voice-data", type=Path, default=Path("../shared/data/voice"))
    parser.add_argument("--conversations", type=int, default=300, help="drawn for each half")
    parser.add_argument("--cache", type=Path, default=Path("var/cache/speakers/speech-embeddings.npz"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--talking", type=Path, help="a folder of videos of one person each, labelled too")
    parser.add_argument("--whisper", default="base", help="Whisper model for --talking")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    clips = list_clips(args.voice_data)
    rng = np.random.default_rng(args.seed)
    choosing, scored = halves(clips)
    dev = draw_conversations(clips, choosing, args.conversations, rng)
    test = draw_conversations(clips, scored, args.conversations, rng)
    embeddings = Embeddings(clips, args.cache)
    trials = {t: score(dev, embeddings, t) for t in THRESHOLDS}
    for t, s in trials.items():
        logger.info("threshold %.3f: turns %.3f, count %.3f", t, s.turn_attribution, s.right_speaker_count)
    threshold = max(trials, key=lambda t: trials[t].turn_attribution + trials[t].right_speaker_count)
    held_out = score(test, embeddings, threshold)
    by_corpus = {
        corpus: score([c for c in test if c.corpus == corpus], embeddings, threshold)
        for corpus in sorted({c.corpus for c in test})
    }
    embeddings.save()
    ms_per_second = embedding_cost(embeddings, clips[:: max(1, len(clips) // 40)])
    report = DiarizationReport(
        threshold=threshold,
        chosen_on=trials[threshold],
        held_out=held_out,
        held_out_by_corpus=by_corpus,
        ms_per_speech_second=ms_per_second,
        takes_embedded=embeddings.embedded,
    )
    if args.talking is not None:
        whisper = whisper_model_dir(args.whisper, Path("var/cache/whisper"))
        report.talking = label_videos(sorted(args.talking.glob("*.mp4")), whisper)
        report.joined = label_joined(sorted(args.talking.glob("*.mp4")), whisper)
    print(report.model_dump_json(indent=2) if args.json else _text(report))
    return report


def _text(report: DiarizationReport) -> str:
    lines = [f"threshold {report.threshold} (chosen on the first half of each corpus's speakers)"]
    for name, s in [
        ("chosen on", report.chosen_on),
        ("held out", report.held_out),
        *report.held_out_by_corpus.items(),
    ]:
        people = "  ".join(f"{k} people: {a:.3f}/{c:.2f}" for k, (a, c) in s.by_people.items())
        lines.append(
            f"{name:<10} {s.conversations:>4} conversations: turns attributed {s.turn_attribution:.3f}, "
            f"right number of speakers {s.right_speaker_count:.3f}   ({people})"
        )
    lines.append(
        f"{report.ms_per_speech_second:.1f} ms to embed a second of speech ({report.takes_embedded} takes)"
    )
    for run in report.talking:
        lines.append(
            f"{run.video}: {run.speakers} speaker(s) in {run.utterances} utterances ({run.speech_s} s), "
            f"{run.cut} cut; {run.ms_per_utterance} ms an utterance"
        )
    if (joined := report.joined) is not None:
        lines.append(
            f"the {joined.people} videos joined ({joined.seconds} s, no pauses): {joined.speakers} "
            f"speaker(s) in {joined.utterances} utterances, {joined.cut} cut; {joined.attribution:.3f} of "
            "the utterances given their person"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
