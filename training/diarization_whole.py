"""Telling speakers apart through the whole path, measured on conversations rendered to audio (`make
eval-speakers`, after `training.diarization_eval`).

    python -m training.diarization_whole [--voice-data ../shared/data/voice] [--conversations 60] [--json]

`training.diarization_eval` scores the clustering on turns it is given. Here the held-out half's
conversations (the speakers the threshold was not chosen on, drawn the same way) become one recording each:
the turns' speech one after another, 0.4-1.0 s apart, quick exchanges 0.15 s after the turn before. The
recording goes through the transcriber's path (Whisper base and `Speakers.label`, cuts at changes of voice
included), and the labelled utterances are scored against the turns:

- diarization error rate on 10 ms frames, with the usual 0.25 s collar around each turn's ends: missed
  speech (a turn's frame no utterance covers), false alarm (an utterance's frame that is no turn's) and
  confusion (the wrong person, under the best one-to-one mapping of labels to people), over the turns'
  frames;
- per-turn attribution: each turn takes the label that covers most of it (none if nothing does), the share
  of turns right under the best mapping;
- the share of recordings with the right number of speakers.
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
from pydantic import BaseModel

from emotion_contract.events import Span
from shared.assets import whisper_model_dir
from shared.media.decode import load_audio
from shared.model.speaker_encoder import SAMPLE_RATE, load_speaker_encoder
from shared.model.speakers import CHANGE_DISTANCE, DEFAULT_THRESHOLD, Speakers
from shared.transcription import Transcriber
from shared.transcription import Transcript as WhisperTranscript
from training.diarization_eval import Conversation, best_mapping, draw_conversations, halves, speech_of
from training.voice_data import list_clips

logger = logging.getLogger(__name__)
FRAME_S: Final = 0.01
COLLAR_S: Final = 0.25
LEAD_S: Final = 0.5
QUICK_PAUSE_S: Final = 0.15
PAUSE_S: Final = (0.4, 1.0)


class Turned(BaseModel):
    """A turn as placed in the recording."""

    speaker: str
    start: float
    end: float


class Recording(BaseModel):
    turns: list[Turned]
    audio_s: float


class WholeScores(BaseModel):
    recordings: int
    der: float
    missed: float
    false_alarm: float
    confusion: float
    turn_attribution: float
    right_speaker_count: float
    utterances_cut: int
    by_people: dict[int, tuple[float, float, float]]  # DER, attribution, right count
    ms_per_utterance: float
    without_cuts: "WholeScores | None" = None  # the same recordings, no utterance cut at a change of voice


def render(
    conversation: Conversation, paths: dict[str, Path], rng: np.random.Generator
) -> tuple[npt.NDArray[np.float32], Recording]:
    pieces = [np.zeros(int(LEAD_S * SAMPLE_RATE), dtype=np.float32)]
    turns, at = [], LEAD_S
    for i, turn in enumerate(conversation.turns):
        speech = speech_of(load_audio(paths[turn.stem]))
        if turn.quick:
            speech = speech[: int(turn.seconds * SAMPLE_RATE)]
        if i:
            pause = QUICK_PAUSE_S if turn.quick else float(rng.uniform(*PAUSE_S))
            pieces.append(np.zeros(int(pause * SAMPLE_RATE), dtype=np.float32))
            at += int(pause * SAMPLE_RATE) / SAMPLE_RATE
        pieces.append(speech)
        turns.append(Turned(speaker=turn.speaker, start=at, end=at + len(speech) / SAMPLE_RATE))
        at += len(speech) / SAMPLE_RATE
    pieces.append(np.zeros(int(LEAD_S * SAMPLE_RATE), dtype=np.float32))
    audio = np.concatenate(pieces)
    return audio, Recording(turns=turns, audio_s=len(audio) / SAMPLE_RATE)


def _frames(intervals: Sequence[tuple[float, float, str]], n: int) -> list[str | None]:
    frames: list[str | None] = [None] * n
    for start, end, who in intervals:
        for f in range(int(start / FRAME_S), min(n, int(np.ceil(end / FRAME_S)))):
            frames[f] = who
    return frames


def error_frames(recording: Recording, labelled: Sequence[Span]) -> tuple[int, int, int, int]:
    """(reference speech frames, missed, false alarm, confusion), outside the collars."""
    n = int(np.ceil(recording.audio_s / FRAME_S))
    ref = _frames([(t.start, t.end, t.speaker) for t in recording.turns], n)
    hyp = _frames([(s.start, s.end, s.speaker or "?") for s in labelled], n)
    scored = np.ones(n, dtype=bool)
    for t in recording.turns:
        for edge in (t.start, t.end):
            scored[max(0, int((edge - COLLAR_S) / FRAME_S)) : int((edge + COLLAR_S) / FRAME_S)] = False
    mapping = best_mapping([(r, h) for r, h, k in zip(ref, hyp, scored, strict=True) if k and r and h])
    speech = missed = false_alarm = confusion = 0
    for r, h, keep in zip(ref, hyp, scored, strict=True):
        if not keep:
            continue
        speech += r is not None
        missed += r is not None and h is None
        false_alarm += r is None and h is not None
        confusion += r is not None and h is not None and mapping.get(h) != r
    return speech, missed, false_alarm, confusion


def turn_labels(recording: Recording, labelled: Sequence[Span]) -> list[str | None]:
    """The label covering most of each turn."""
    labels: list[str | None] = []
    for turn in recording.turns:
        cover: dict[str, float] = {}
        for span in labelled:
            overlap = min(turn.end, span.end) - max(turn.start, span.start)
            if overlap > 0 and span.speaker:
                cover[span.speaker] = cover.get(span.speaker, 0.0) + overlap
        labels.append(max(cover, key=lambda k: cover[k]) if cover else None)
    return labels


@dataclass(frozen=True)
class Heard:
    """A conversation rendered and transcribed once, for every variant of the labelling to be scored on."""

    conversation: Conversation
    recording: Recording
    audio: npt.NDArray[np.float32]
    transcript: WhisperTranscript


def hear(
    conversations: Sequence[Conversation],
    paths: dict[str, Path],
    transcriber: Transcriber,
    rng: np.random.Generator,
) -> list[Heard]:
    heard = []
    for number, conversation in enumerate(conversations):
        audio, recording = render(conversation, paths, rng)
        heard.append(Heard(conversation, recording, audio, transcriber.transcribe(audio)))
        logger.info("transcribed %d/%d", number + 1, len(conversations))
    return heard


def score_whole(heard: Sequence[Heard], speakers: Speakers) -> WholeScores:
    totals = np.zeros(4)
    attributions, counts, cut, spent, utterances = [], [], 0, 0.0, 0
    by_people: dict[int, list[tuple[float, float, float]]] = {}
    for one in heard:
        transcript, recording = one.transcript, one.recording
        started = time.perf_counter()
        labelled = speakers.label(one.audio, transcript.spans, transcript.span_words)
        spent += time.perf_counter() - started
        utterances += len(transcript.spans)
        cut += len(labelled) - len(transcript.spans)
        frames = np.array(error_frames(recording, labelled), dtype=np.float64)
        totals += frames
        der = float(frames[1:].sum() / max(frames[0], 1))
        given = turn_labels(recording, labelled)
        mapping = best_mapping([(t.speaker, g) for t, g in zip(recording.turns, given, strict=True) if g])
        right = [
            g is not None and mapping.get(g) == t.speaker for t, g in zip(recording.turns, given, strict=True)
        ]
        attribution = float(np.mean(right))
        count = float(len({s.speaker for s in labelled}) == one.conversation.people)
        attributions.append(attribution)
        counts.append(count)
        by_people.setdefault(one.conversation.people, []).append((der, attribution, count))
    speech = max(totals[0], 1.0)
    return WholeScores(
        recordings=len(heard),
        der=round(float(totals[1:].sum() / speech), 4),
        missed=round(float(totals[1] / speech), 4),
        false_alarm=round(float(totals[2] / speech), 4),
        confusion=round(float(totals[3] / speech), 4),
        turn_attribution=round(float(np.mean(attributions)), 4),
        right_speaker_count=round(float(np.mean(counts)), 4),
        utterances_cut=cut,
        by_people={
            k: tuple(round(float(x), 4) for x in np.mean(v, axis=0)) for k, v in sorted(by_people.items())
        },
        ms_per_utterance=round(1000 * spent / max(1, utterances), 1),
    )


def main(argv: list[str] | None = None) -> WholeScores:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--voice-data", type=Path, default=Path("../shared/data/voice"))
    parser.add_argument("--conversations", type=int, default=60)
    parser.add_argument("--whisper", default="base")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--change-distance", type=float, default=CHANGE_DISTANCE, help="1 cuts nothing")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    clips = list_clips(args.voice_data)
    rng = np.random.default_rng(args.seed)
    _, scored = halves(clips)
    conversations = draw_conversations(clips, scored, args.conversations, rng)
    transcriber = Transcriber(whisper_model_dir(args.whisper, Path("var/cache/whisper")))
    heard = hear(conversations, {c.stem: c.path for c in clips}, transcriber, rng)
    encoder = load_speaker_encoder()
    scores = score_whole(
        heard, Speakers(encoder, threshold=args.threshold, change_distance=args.change_distance)
    )
    scores.without_cuts = score_whole(heard, Speakers(encoder, threshold=args.threshold, change_distance=1.0))
    print(scores.model_dump_json(indent=2) if args.json else _text(scores))
    return scores


def _line(scores: WholeScores) -> str:
    people = "  ".join(
        f"{k} people: DER {d:.3f}, turns {a:.3f}, count {c:.2f}" for k, (d, a, c) in scores.by_people.items()
    )
    return (
        f"DER {scores.der:.3f} (missed {scores.missed:.3f}, false alarm {scores.false_alarm:.3f}, confusion "
        f"{scores.confusion:.3f}), turns attributed {scores.turn_attribution:.3f}, right number of speakers "
        f"{scores.right_speaker_count:.3f}; {scores.utterances_cut} utterances cut; "
        f"{scores.ms_per_utterance} ms "
        f"an utterance\n    ({people})"
    )


def _text(scores: WholeScores) -> str:
    lines = [f"{scores.recordings} recordings through Whisper and Speakers.label:", "  " + _line(scores)]
    if scores.without_cuts is not None:
        lines += ["  the same, no utterance cut at a change of voice:", "  " + _line(scores.without_cuts)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
