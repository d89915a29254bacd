"""The whole analysis scored on real recordings: the kit's face + voice clips (`make eval-av`).

    python -m training.eval_av [--clips ../shared/data/av/javanese] [--bundle var/bundles/default] \
        [--reliability-png docs/reliability-av.png] [--json]

Each clip goes through the in-process analyzer exactly as an upload would (the transcriber finds its
utterances and the language, the face is followed, the voice read, the words read where they can be, and
all fused). A clip's answer per modality is its utterances' distributions weighted by their length; a
modality a clip lacks is left out of that modality's scores (`n` says how many clips it covers), and the
fused answer covers every clip. Scores are given for all clips and for each actor, the folds the models
that learn from these actors are chosen by. The analyses are cached per bundle and settings
(var/cache/eval-av), so scoring again, or refitting what reads them (`training.fusion_fit --av`), costs
nothing.

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
from typing import Final

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from emotion_contract.labels import EMOTIONS, Modality, WordsSource
from emotion_contract.results import AnalysisResult
from training.evaluate_media import file_distribution
from training.metrics import HeadScores, confusion_text, score_head

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


def _cache_path(cache_dir: Path, bundle_version: str, settings: dict[str, str]) -> Path:
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    return cache_dir / f"{bundle_version}-{key}.jsonl"


def analyse_clips(
    clips: Sequence[AvClip], args: argparse.Namespace
) -> tuple[str, dict[str, str], list[ClipAnalysis]]:
    """Every clip through the in-process analyzer, reading and adding to the cache."""
    from analyzer.pipeline import InProcessAnalyzer, PipelineOptions
    from shared.model.bundle import open_bundle
    from shared.transcription import WordsPolicy

    version = open_bundle(str(args.bundle)).version
    words = WordsPolicy(translate=not args.no_translate)
    settings = {"whisper": args.whisper_model, **{k: str(v) for k, v in words.model_dump().items()}}
    cache = _cache_path(args.cache_dir, version, settings)
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
    labels = np.array([a.label for a in analyses])
    actors = np.array([a.actor for a in analyses])
    per_actor = {}
    for actor in sorted(set(actors.tolist())):
        rows = has & (actors == actor)
        if rows.any():
            per_actor[actor] = round(score_head(distributions[rows], labels[rows], EMOTIONS).weighted_f1, 4)
    return ViewReport(
        clips=int(has.sum()),
        scores=score_head(distributions[has], labels[has], EMOTIONS),
        per_actor_weighted_f1=per_actor,
    )


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
        f"{'view':<6} {'clips':>5} {'weighted F1':>11} {'accuracy':>8} {'ECE':>6}   per actor (weighted F1)",
    ]
    for name, view in av.views.items():
        s = view.scores
        actors = " ".join(f"{a}:{f:.2f}" for a, f in view.per_actor_weighted_f1.items())
        lines.append(
            f"{name:<6} {view.clips:>5} {s.weighted_f1:>11.3f} {s.accuracy:>8.3f} {s.ece:>6.3f}   {actors}"
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
            xs, ys, marker="", linewidth=1.5, label=f"{name} (ECE {ece:.3f}, {len(labels)} clips)"
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
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a report")
    return parser


def main(argv: list[str] | None = None) -> AvReport:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = get_args_parser().parse_args(argv)
    clips = list_av_clips(args.clips)
    version, settings, analyses = analyse_clips(clips, args)
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
