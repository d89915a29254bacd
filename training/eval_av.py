"""The whole analysis scored on real recordings: the kit's face + voice clips (`make eval-av`).

    python -m training.eval_av [--clips ../shared/data/av/javanese] [--bundle var/bundles/default] \
        [--reliability-png docs/reliability-av.png] [--json]

Each clip goes through the in-process analyzer exactly as an upload would (the transcriber finds its
utterances and the language, the face is followed, the voice read, the words read where they can be, and
all fused). A clip's answer per modality is its utterances' distributions weighted by their length; a
modality a clip lacks is left out of that modality's scores (`n` says how many clips it covers), and the
fused answer covers every clip. Scores are given for all clips and for each actor, the folds the models
that learn from these actors are chosen by. The analyses are cached per bundle components and settings
(var/cache/eval-av), so scoring again, or refitting what reads them, costs nothing.

Out of fold: the shipped voice head and fusion rule learnt from these very actors, so with `--folds DIR`
each clip's voice is read again by the head of its actor's fold (`DIR/voice/fold-K.safetensors`, made by
`training.voice` without that actor) and its utterances fused again by the rule of that fold
(`DIR/fusion/fold-K.json`, made by `training.fusion_fit` without that actor). `--readings-out` writes each
utterance's per-modality distributions (out of fold) for `training.fusion_fit --av-readings`.

The clips are acted Javanese speech (six emotions, no disgust): the words carry no English, so they are read
through Whisper's translation or not at all.
"""

import argparse
import csv
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from emotion_contract.labels import EMOTIONS, Modality, WordsSource
from emotion_contract.results import AnalysisResult, UtteranceResult, emotion_scores
from shared.model.pooling import PoolingRule, expert_scales, pool
from training.evaluate_media import emotion_distribution, file_distribution
from training.metrics import (
    HeadScores,
    Interval,
    bootstrap_interval,
    confusion_text,
    ece_if_calibrated,
    expected_calibration_error,
    score_head,
)
from training.voice import FOLDS

if TYPE_CHECKING:
    from shared.model.bundle import LocalBundle
    from shared.model.inference import VideoFeaturizer
    from shared.model.voice import WhisperStates

logger = logging.getLogger(__name__)
DEFAULT_CLIPS: Final = Path("../shared/data/av/javanese")
VIEWS: Final[dict[str, Modality | None]] = {
    "face": Modality.VIDEO,
    "voice": Modality.AUDIO,
    "words": Modality.TEXT,
    "fused": None,
}


@dataclass(frozen=True)
class AvClip:
    path: Path
    actor: str
    label: int  # index into EMOTIONS

    @property
    def stem(self) -> str:
        return self.path.stem


def list_av_clips(directory: Path) -> list[AvClip]:
    """The clips of `directory`/labels.csv (file, actor, …, emotion in MELD's names), in its order."""
    table = directory / "labels.csv"
    if not table.is_file():
        raise FileNotFoundError(f"{table} is missing: the kit's face + voice clips come with their labels")
    with table.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    clips = [AvClip(directory / row["file"], row["actor"], EMOTIONS.index(row["emotion"])) for row in rows]
    if not clips:
        raise ValueError(f"{table} lists no clips")
    return clips


class ClipAnalysis(BaseModel):
    stem: str
    actor: str
    label: int
    seconds: float
    result: AnalysisResult


class ViewReport(BaseModel):
    clips: int = Field(description="clips this view had an answer for")
    scores: HeadScores
    ece_interval: Interval = Field(description="where the ECE falls on other draws of as many clips")
    ece_if_calibrated: float = Field(
        description="the mean ECE a perfectly calibrated answer with these confidences reads on these clips"
    )
    ece_if_calibrated_interval: Interval
    per_actor_weighted_f1: dict[str, float]


class AvReport(BaseModel):
    clips: str
    bundle_version: str
    settings: dict[str, str]
    n: int
    views: dict[str, ViewReport]
    words_read: dict[str, int] = Field(description="utterances by what the words model read")
    languages: dict[str, int] = Field(description="clips by the language Whisper detected")
    ms_per_clip: float = Field(description="mean seconds of the analysis per clip, in milliseconds")


def _cache_path(cache_dir: Path, bundle: "LocalBundle", settings: dict[str, str]) -> Path:
    """Keyed by the files of the components that read the clips (not the fusion rule, which `--folds`
    applies again) and the settings."""
    readers = {
        name: [f.sha256 for f in spec.files]
        for name, spec in bundle.manifest.components.items()
        if name in ("text", "video", "face", "audio")
    }
    key = hashlib.sha256(json.dumps([readers, settings], sort_keys=True).encode()).hexdigest()[:10]
    return cache_dir / f"{bundle.version}-{key}.jsonl"


def analyse_clips(
    clips: Sequence[AvClip], args: argparse.Namespace
) -> tuple[str, dict[str, str], list[ClipAnalysis]]:
    """Every clip through the in-process analyzer, reading and adding to the cache."""
    from analyzer.pipeline import InProcessAnalyzer, PipelineOptions
    from shared.model.bundle import open_bundle
    from shared.transcription import WordsPolicy

    bundle = open_bundle(str(args.bundle))
    version = bundle.version
    words = WordsPolicy(translate=not args.no_translate)
    settings = {"whisper": args.whisper_model, **{k: str(v) for k, v in words.model_dump().items()}}
    cache = _cache_path(args.cache_dir, bundle, settings)
    done: dict[str, ClipAnalysis] = {}
    if cache.is_file():
        for line in cache.read_text().splitlines():
            analysis = ClipAnalysis.model_validate_json(line)
            done[analysis.stem] = analysis
    todo = [c for c in clips if c.stem not in done]
    if todo:
        analyzer = InProcessAnalyzer(
            PipelineOptions(
                bundle_uri=str(args.bundle),
                whisper_model=args.whisper_model,
                words=words,
                whisper_threads=args.threads,
            )
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        with cache.open("a") as out:
            for i, clip in enumerate(todo):
                started = time.perf_counter()
                result = analyzer.analyze(clip.path)
                analysis = ClipAnalysis(
                    stem=clip.stem,
                    actor=clip.actor,
                    label=clip.label,
                    seconds=time.perf_counter() - started,
                    result=result,
                )
                out.write(analysis.model_dump_json() + "\n")
                out.flush()
                done[clip.stem] = analysis
                logger.info("%d/%d %s (%.1f s)", i + 1, len(todo), clip.stem, analysis.seconds)
    return version, settings, [done[c.stem] for c in clips]


def actor_fold(actor: str) -> int:
    """The fold of a kit actor: `training.voice`'s, (n − 1) mod 5, one actor per fold."""
    return (int(actor) - 1) % FOLDS


def _distribution(u: UtteranceResult, modality: Modality) -> npt.NDArray[np.float64] | None:
    prediction = u.modalities.get(modality)
    if prediction is None or not prediction.available or prediction.emotions is None:
        return None
    return emotion_distribution(prediction.emotions)


def refuse(result: AnalysisResult, rule: PoolingRule) -> AnalysisResult:
    """The utterances' fused emotions pooled again from their modalities' by `rule` (the fused sentiment is
    left as it was: the clips have no sentiment labels)."""
    utterances = []
    for u in result.utterances:
        experts = {m: d for m in Modality if (d := _distribution(u, m)) is not None}
        if not experts:
            utterances.append(u)
            continue
        video = u.modalities.get(Modality.VIDEO)
        quality = video.quality if video is not None and video.quality is not None else 1.0
        scales = expert_scales(rule.emotion, 1, [quality], [u.words is WordsSource.TRANSLATION])
        fused = pool(
            {m: d[None, :].astype(np.float32) for m, d in experts.items()},
            {m: np.ones(1, dtype=bool) for m in experts},
            rule.emotion,
            scales,
        )[0]
        utterances.append(u.model_copy(update={"emotions": emotion_scores(fused.tolist())}))
    return result.model_copy(update={"utterances": utterances})


def _available(result: AnalysisResult, modality: Modality) -> list[int]:
    """The utterances the modality read."""
    return [i for i, u in enumerate(result.utterances) if (m := u.modalities.get(modality)) and m.available]


def _read_again(
    result: AnalysisResult, modality: Modality, readings: dict[int, list[float]]
) -> AnalysisResult:
    """The result with the modality's emotions of utterance i replaced by readings[i]; the rest as it was."""
    utterances = list(result.utterances)
    for i, emotions in readings.items():
        u = utterances[i]
        again = u.modalities[modality].model_copy(update={"emotions": emotion_scores(emotions)})
        utterances[i] = u.model_copy(update={"modalities": {**u.modalities, modality: again}})
    return result.model_copy(update={"utterances": utterances})


class FoldModels:
    """The voice heads and fusion rules of the actor folds, where `--folds` has them, and the face networks,
    where `--face-folds` has them."""

    def __init__(self, directory: Path | None, bundle_dir: Path, face_directory: Path | None = None) -> None:
        from shared.model.bundle import load_state
        from shared.model.face import FaceExpressionNet
        from shared.model.voice import VoiceHead

        self.voice: dict[int, VoiceHead] = {}
        self.face: dict[int, FaceExpressionNet] = {}
        self.rules: dict[int, PoolingRule] = {}
        for k in range(FOLDS):
            if directory is not None and (path := directory / "voice" / f"fold-{k}.safetensors").is_file():
                head = VoiceHead()
                load_state(head, path)
                self.voice[k] = head.eval()
            if directory is not None and (path := directory / "fusion" / f"fold-{k}.json").is_file():
                self.rules[k] = PoolingRule.model_validate_json(path.read_text())
            if face_directory is not None and (path := face_directory / f"fold-{k}.safetensors").is_file():
                net = FaceExpressionNet()
                load_state(net, path)
                self.face[k] = net.eval()
        self.bundle_dir = bundle_dir
        self._states: WhisperStates | None = None
        self._video: VideoFeaturizer | None = None

    def face_again(self, clip: AvClip, result: AnalysisResult) -> AnalysisResult:
        """The clip's face read by its fold's network, tracked and pooled over the same utterances as the
        video encoder and fusion do."""
        from shared.feature_matrix import to_array
        from shared.model.bundle import open_bundle
        from shared.model.inference import VideoFeaturizer, pool_video_track
        from shared.stages import track_video_file

        net = self.face.get(actor_fold(clip.actor))
        seen = _available(result, Modality.VIDEO)
        if net is None or not seen:
            return result
        if self._video is None:
            self._video = VideoFeaturizer(open_bundle(str(self.bundle_dir)))
            self._video.model = None  # the face alone is read again
        self._video.face = net
        track = track_video_file(clip.path, featurizer=self._video, max_duration_s=float("inf"))
        spans = [(u.start_time, u.end_time) for u in result.utterances]
        encoding = pool_video_track(track, spans)
        if encoding.face_emotions is None:
            return result
        pooled = to_array(encoding.face_emotions).astype(np.float64)
        readings = {i: (pooled[i] / pooled[i].sum()).tolist() for i in seen if encoding.video.present[i]}
        return _read_again(result, Modality.VIDEO, readings)

    def voice_again(self, clip: AvClip, result: AnalysisResult) -> AnalysisResult:
        """The clip's voice read by its fold's head, over the same utterances."""
        from shared.media.decode import load_audio
        from shared.model.voice import WhisperStates

        head = self.voice.get(actor_fold(clip.actor))
        heard = _available(result, Modality.AUDIO)
        if head is None or not heard:
            return result
        self._states = self._states or WhisperStates(self.bundle_dir / "audio" / "whisper")
        states = self._states.speech_states(load_audio(clip.path))
        spans = [(result.utterances[i].start_time, result.utterances[i].end_time) for i in heard]
        probabilities = head.span_probabilities(states, spans)
        readings = {i: p.tolist() for i, p in zip(heard, probabilities, strict=True)}
        return _read_again(result, Modality.AUDIO, readings)

    def apply(self, clip: AvClip, analysis: ClipAnalysis, bundle_rule: PoolingRule) -> ClipAnalysis:
        result = self.face_again(clip, self.voice_again(clip, analysis.result))
        result = refuse(result, self.rules.get(actor_fold(clip.actor), bundle_rule))
        return analysis.model_copy(update={"result": result})


class Reading(BaseModel):
    """One utterance of a clip, as fusion sees it: each modality's distribution (None where missing)."""

    stem: str
    actor: str
    label: int
    seconds: float
    face: list[float] | None
    face_quality: float
    voice: list[float] | None
    words: list[float] | None
    translated: bool


def readings(analyses: Sequence[ClipAnalysis]) -> list[Reading]:
    out = []
    for a in analyses:
        for u in a.result.utterances:
            face, voice, words = (
                _distribution(u, m) for m in (Modality.VIDEO, Modality.AUDIO, Modality.TEXT)
            )
            video = u.modalities.get(Modality.VIDEO)
            out.append(
                Reading(
                    stem=a.stem,
                    actor=a.actor,
                    label=a.label,
                    seconds=max(u.end_time - u.start_time, 1e-3),
                    face=None if face is None else face.tolist(),
                    face_quality=video.quality if video is not None and video.quality is not None else 1.0,
                    voice=None if voice is None else voice.tolist(),
                    words=None if words is None else words.tolist(),
                    translated=u.words is WordsSource.TRANSLATION,
                )
            )
    return out


def view_distributions(
    analyses: Sequence[ClipAnalysis], modality: Modality | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """(clips, 7) distributions of one view (NaN rows where it had none) and which clips had one."""
    rows = np.full((len(analyses), len(EMOTIONS)), np.nan)
    for i, analysis in enumerate(analyses):
        distribution = file_distribution(analysis.result, modality)
        if distribution is not None:
            rows[i] = distribution
    return rows, ~np.isnan(rows).any(axis=1)


def score_view(
    distributions: npt.NDArray[np.float64], has: npt.NDArray[np.bool_], analyses: Sequence[ClipAnalysis]
) -> ViewReport | None:
    if not has.any():
        return None
    labels = np.array([a.label for a in analyses])[has]
    actors = np.array([a.actor for a in analyses])[has]
    calibrated, calibrated_interval = ece_if_calibrated(distributions[has])
    return ViewReport(
        clips=int(has.sum()),
        scores=score_head(distributions[has], labels, EMOTIONS),
        ece_interval=bootstrap_interval(distributions[has], labels, expected_calibration_error),
        ece_if_calibrated=calibrated,
        ece_if_calibrated_interval=calibrated_interval,
        per_actor_weighted_f1=per_actor_weighted_f1(distributions[has], labels, actors),
    )


def per_actor_weighted_f1(
    distributions: npt.NDArray[np.floating], labels: npt.NDArray[np.int64], actors: npt.NDArray[np.str_]
) -> dict[str, float]:
    """Each actor's clips scored alone: the folds the models that learn from these actors are chosen by."""
    return {
        actor: round(
            score_head(distributions[actors == actor], labels[actors == actor], EMOTIONS).weighted_f1, 4
        )
        for actor in sorted(set(actors.tolist()))
    }


def report(
    directory: Path, version: str, settings: dict[str, str], analyses: Sequence[ClipAnalysis]
) -> AvReport:
    views = {}
    for name, modality in VIEWS.items():
        view = score_view(*view_distributions(analyses, modality), analyses)
        if view is not None:
            views[name] = view
    words: dict[str, int] = {source.value: 0 for source in WordsSource}
    languages: dict[str, int] = {}
    for analysis in analyses:
        for u in analysis.result.utterances:
            words[u.words.value] += 1
        language = f"{analysis.result.language}"
        languages[language] = languages.get(language, 0) + 1
    return AvReport(
        clips=str(directory),
        bundle_version=version,
        settings=settings,
        n=len(analyses),
        views=views,
        words_read=words,
        languages=dict(sorted(languages.items(), key=lambda item: -item[1])),
        ms_per_clip=round(1000 * float(np.mean([a.seconds for a in analyses])), 1),
    )


def text_report(av: AvReport) -> str:
    lines = [
        f"{av.n} clips of {av.clips}, bundle {av.bundle_version} ({av.settings})",
        f"{'view':<6} {'clips':>5} {'weighted F1':>11} {'accuracy':>8} {'ECE':>6} {'ECE 90% bootstrap':>17}"
        f" {'ECE if calibrated':>24}   per actor (weighted F1)",
    ]
    for name, view in av.views.items():
        s, ci, cal = view.scores, view.ece_interval, view.ece_if_calibrated_interval
        actors = " ".join(f"{a}:{f:.2f}" for a, f in view.per_actor_weighted_f1.items())
        lines.append(
            f"{name:<6} {view.clips:>5} {s.weighted_f1:>11.3f} {s.accuracy:>8.3f} {s.ece:>6.3f} "
            f"{f'[{ci.low:.3f}, {ci.high:.3f}]':>17} "
            f"{f'{view.ece_if_calibrated:.3f} [{cal.low:.3f}, {cal.high:.3f}]':>24}   {actors}"
        )
    lines.append(f"words read: {av.words_read}; languages detected: {av.languages}")
    lines.append(f"{av.ms_per_clip:.0f} ms of analysis per clip")
    for name, view in av.views.items():
        lines += ["", f"{name}:", confusion_text(view.scores)]
    return "\n".join(lines)


def write_reliability_png(
    views: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]], path: Path, n_bins: int = 10
) -> Path:
    """A reliability diagram per view: accuracy against confidence of the top class, in equal-width bins
    (a marker's size shows how many clips fell in its bin); the diagonal is perfect calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 5.5))
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    edges = np.linspace(0, 1, n_bins + 1)
    for name, (probabilities, labels) in views.items():
        confidence = probabilities.max(axis=1)
        correct = probabilities.argmax(axis=1) == labels
        bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
        xs, ys, sizes = [], [], []
        for b in range(n_bins):
            members = bins == b
            if members.any():
                xs.append(confidence[members].mean())
                ys.append(correct[members].mean())
                sizes.append(members.sum())
        ece = sum(s / len(labels) * abs(y - x) for x, y, s in zip(xs, ys, sizes, strict=True))
        (line,) = axis.plot(
            xs,
            ys,
            marker="",
            linewidth=1.5,
            label=f"{name} ({n_bins}-bin ECE {ece:.3f}, {len(labels)} clips)",
        )
        axis.scatter(xs, ys, s=[12 + 4 * s for s in sizes], color=line.get_color(), alpha=0.7)
    axis.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence of the top emotion", ylabel="share correct")
    axis.set_title("Real face + voice clips (out of fold by actor)")
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--clips", type=Path, default=DEFAULT_CLIPS, help="a folder with labels.csv and clips/"
    )
    parser.add_argument("--bundle", type=Path, default=Path("var/bundles/default"))
    parser.add_argument("--whisper-model", default="base")
    parser.add_argument("--no-translate", action="store_true", help="words of other languages: missing")
    parser.add_argument("--threads", type=int, default=None, help="the transcriber's CTranslate2 threads")
    parser.add_argument("--cache-dir", type=Path, default=Path("var/cache/eval-av"))
    parser.add_argument("--reliability-png", type=Path, default=None, help="write a reliability diagram here")
    parser.add_argument("--folds", type=Path, default=None, help="voice/ and fusion/ of the actor folds")
    parser.add_argument(
        "--face-folds",
        type=Path,
        default=None,
        help="fold-K.safetensors: the face networks of the actor folds",
    )
    parser.add_argument("--readings-out", type=Path, default=None, help="write each utterance's readings")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a report")
    return parser


def main(argv: list[str] | None = None) -> AvReport:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = get_args_parser().parse_args(argv)
    clips = list_av_clips(args.clips)
    version, settings, analyses = analyse_clips(clips, args)
    if args.folds is not None or args.face_folds is not None:
        from shared.model.inference import FUSION_RULE

        folds = FoldModels(args.folds, args.bundle, args.face_folds)
        bundle_rule = PoolingRule.model_validate_json((args.bundle / FUSION_RULE).read_text())
        analyses = [folds.apply(c, a, bundle_rule) for c, a in zip(clips, analyses, strict=True)]
        settings["folds"] = (
            f"{args.folds}: voice {sorted(folds.voice)}, fusion {sorted(folds.rules)}; "
            f"{args.face_folds}: face {sorted(folds.face)}"
        )
    if args.readings_out is not None:
        args.readings_out.parent.mkdir(parents=True, exist_ok=True)
        args.readings_out.write_text("".join(r.model_dump_json() + "\n" for r in readings(analyses)))
    av = report(args.clips, version, settings, analyses)
    if args.reliability_png:
        labels = np.array([a.label for a in analyses])
        curves = {}
        for name, modality in VIEWS.items():
            distributions, has = view_distributions(analyses, modality)
            if has.any():
                curves[name] = (distributions[has], labels[has])
        write_reliability_png(curves, args.reliability_png)
    print(av.model_dump_json(indent=2) if args.json else text_report(av))
    return av


if __name__ == "__main__":
    main()
