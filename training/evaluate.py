"""Scores a model bundle on a MELD-format CSV: the fused output and each modality alone; and the face and
the voice on labelled data of their own.

    python -m training.evaluate --meld-csv dev_sent_emo.csv [--bundle DIR] [--clips-dir DIR] [--json]
        [--confusion-png PATH]
    python -m training.evaluate --faces faces.npz --speech DIR [--bundle DIR] [--json]

Without clips (only MELD's CSVs exist here) the fused output is the text modality's. Modalities whose
encoder the bundle marks untrained are masked, as the services mask them. Probabilities are the bundle's
calibrated ones (logits over its fitted temperatures).
"""

import argparse
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Final, cast

import matplotlib
import numpy as np
import torch
from pydantic import BaseModel, Field

from emotion_contract.labels import EMOTIONS, SENTIMENTS, Modality
from shared.model.bundle import ComponentName, LocalBundle, open_bundle, torch_device
from shared.model.fusion import FusionClassifier
from training.data import MODALITY_COLUMN, MeldDataset, conversation_loader, read_meld_csv
from training.metrics import HeadScores, confusion_text, score_head
from training.model import MultimodalClassifier, Predictions, Temperatures, load_tokenizer, predict_views

DEFAULT_BUNDLE: Final = Path("var/bundles/default")
FUSED: Final = "fused"
CPU: Final = torch.device("cpu")


class ViewScores(BaseModel):
    """Scores of one output (the fused one, or one modality alone) over the utterances it covers."""

    n: int
    emotion_weighted_f1: float
    sentiment_weighted_f1: float
    emotion_accuracy: float
    sentiment_accuracy: float
    emotion_precision: float = Field(description="weighted precision")
    sentiment_precision: float = Field(description="weighted precision")
    emotion_ece: float
    sentiment_ece: float
    emotion: HeadScores
    sentiment: HeadScores


class EvaluationReport(ViewScores):
    """The fused output's scores at the top level, each modality's own under `per_modality`."""

    csv: str
    bundle_version: str
    modalities: list[str] = Field(description="what the fused output was given")
    present: dict[str, int] = Field(description="utterances that had each modality")
    temperatures: dict[str, float]
    calibration: Temperatures | None = Field(
        default=None, description="each head's temperature and class biases, as the bundle applies them"
    )
    per_modality: dict[str, ViewScores]


def fitted_temperatures(fusion: FusionClassifier) -> Temperatures:
    """The calibration stored in the fusion's buffers: each head's temperature and class biases."""

    def values(buffer: object) -> list[float]:
        return [float(v) for v in cast(torch.Tensor, buffer).flatten()]

    return Temperatures(
        emotion=float(cast(torch.Tensor, fusion.emotion_temperature)),
        sentiment=float(cast(torch.Tensor, fusion.sentiment_temperature)),
        emotion_bias=values(fusion.emotion_bias),
        sentiment_bias=values(fusion.sentiment_bias),
    )


def score_view(predictions: Predictions, temperatures: Temperatures) -> ViewScores:
    emotion_p, sentiment_p = predictions.probabilities(temperatures)
    emotion = score_head(emotion_p.numpy(), predictions.emotion.numpy(), EMOTIONS)
    sentiment = score_head(sentiment_p.numpy(), predictions.sentiment.numpy(), SENTIMENTS)
    return ViewScores(
        n=len(predictions),
        emotion_weighted_f1=emotion.weighted_f1,
        sentiment_weighted_f1=sentiment.weighted_f1,
        emotion_accuracy=emotion.accuracy,
        sentiment_accuracy=sentiment.accuracy,
        emotion_precision=emotion.weighted_precision,
        sentiment_precision=sentiment.weighted_precision,
        emotion_ece=emotion.ece,
        sentiment_ece=sentiment.ece,
        emotion=emotion,
        sentiment=sentiment,
    )


def bundle_modalities(bundle: LocalBundle, clips_dir: Path | None) -> frozenset[Modality]:
    """Text, plus video and audio where there are clips and the bundle holds trained encoders for them."""
    media: dict[Modality, ComponentName] = {Modality.VIDEO: "video", Modality.AUDIO: "audio"}
    if clips_dir is None:
        return frozenset({Modality.TEXT})
    return frozenset(
        {Modality.TEXT}
        | {
            m
            for m, name in media.items()
            if bundle.component(name).trained
            and not (m is Modality.AUDIO and bundle.config.audio_encoder != "mel-cnn")
        }
    )


def _only(modality: Modality) -> torch.Tensor:
    keep = torch.zeros(len(MODALITY_COLUMN))
    keep[MODALITY_COLUMN[modality]] = 1.0
    return keep


def bundle_predictions(
    model: MultimodalClassifier,
    bundle: LocalBundle,
    csv_path: Path,
    *,
    clips_dir: Path | None,
    device: torch.device,
    batch_size: int = 64,
    workers: int = 0,
    per_modality: bool = False,
) -> Mapping[str, Predictions]:
    """{'fused': …} and, with `per_modality`, {modality: …} for each modality the bundle can use."""
    config = bundle.config
    modalities = bundle_modalities(bundle, clips_dir)
    tokenizer = load_tokenizer(bundle.path("text/backbone"))
    dataset = MeldDataset(
        read_meld_csv(csv_path),
        config=config,
        modalities=modalities,
        tokenizer=tokenizer,
        clips_dir=clips_dir,
    )
    loader = conversation_loader(
        dataset, batch_size=batch_size, pad_token_id=tokenizer.pad_token_id or 0, workers=workers
    )
    views: dict[str, torch.Tensor | None] = {FUSED: None}
    if per_modality:
        views |= {m.value: _only(m) for m in sorted(modalities)}
    model.to(device)
    return predict_views(model, loader, device, views)


def evaluate_bundle(
    bundle: LocalBundle,
    csv_path: Path,
    *,
    clips_dir: Path | None = None,
    device: torch.device = CPU,
    batch_size: int = 64,
    workers: int = 0,
) -> EvaluationReport:
    model = MultimodalClassifier.from_bundle(bundle)
    temperatures = fitted_temperatures(model.fusion)
    views = bundle_predictions(
        model,
        bundle,
        csv_path,
        clips_dir=clips_dir,
        device=device,
        batch_size=batch_size,
        workers=workers,
        per_modality=True,
    )
    fused = views[FUSED]
    per_modality = {}
    for name, predictions in views.items():
        if name == FUSED:
            continue
        rows = predictions.present[:, MODALITY_COLUMN[Modality(name)]] > 0
        if rows.any():
            per_modality[name] = score_view(_rows(predictions, rows), temperatures)
    return EvaluationReport(
        **score_view(fused, temperatures).model_dump(),
        csv=str(csv_path),
        bundle_version=bundle.version,
        modalities=sorted(name for name in views if name != FUSED),
        present={m.value: int((fused.present[:, c] > 0).sum()) for m, c in MODALITY_COLUMN.items()},
        temperatures={"emotion": temperatures.emotion, "sentiment": temperatures.sentiment},
        calibration=temperatures,
        per_modality=per_modality,
    )


def _rows(predictions: Predictions, rows: torch.Tensor) -> Predictions:
    return Predictions(
        emotion_logits=predictions.emotion_logits[rows],
        sentiment_logits=predictions.sentiment_logits[rows],
        emotion=predictions.emotion[rows],
        sentiment=predictions.sentiment[rows],
        present=predictions.present[rows],
    )


def _head_line(name: str, scores: HeadScores) -> str:
    return (
        f"{name}: accuracy {scores.accuracy:.3f}  weighted precision {scores.weighted_precision:.3f}  "
        f"weighted F1 {scores.weighted_f1:.3f}  macro F1 {scores.macro_f1:.3f}  ECE {scores.ece:.3f}"
    )


def text_report(report: EvaluationReport) -> str:
    lines = [
        f"{report.csv}: {report.n} utterances, bundle {report.bundle_version}, "
        f"fused from {', '.join(report.modalities)} "
        f"(temperatures: emotion {report.temperatures['emotion']:.3f}, "
        f"sentiment {report.temperatures['sentiment']:.3f})",
        "present: " + ", ".join(f"{m} {n}" for m, n in report.present.items()),
        "",
        _head_line("fused emotion", report.emotion),
        confusion_text(report.emotion),
        "",
        _head_line("fused sentiment", report.sentiment),
        confusion_text(report.sentiment),
    ]
    for name, view in report.per_modality.items():
        lines += ["", f"{name} alone ({view.n} utterances)"]
        lines += [_head_line("  emotion", view.emotion), _head_line("  sentiment", view.sentiment)]
    return "\n".join(lines)


def write_confusion_png(report: EvaluationReport, path: Path) -> Path:
    """Both heads' confusion matrices side by side, each row normalised to the true label's count."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [7, 4]})
    for axis, (title, scores) in zip(
        axes, (("emotion", report.emotion), ("sentiment", report.sentiment)), strict=True
    ):
        counts = np.asarray(scores.confusion, dtype=np.float64)
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        axis.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        ticks = range(len(scores.labels))
        axis.set_xticks(ticks, scores.labels, rotation=45, ha="right")
        axis.set_yticks(ticks, scores.labels)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(f"{title}: weighted F1 {scores.weighted_f1:.3f}, accuracy {scores.accuracy:.3f}")
        for (row, column), count in np.ndenumerate(counts):
            colour = "white" if shares[row, column] > 0.5 else "black"
            axis.text(column, row, f"{int(count)}", ha="center", va="center", color=colour, fontsize=8)
    figure.suptitle(f"{Path(report.csv).name}, bundle {report.bundle_version} ({report.n} utterances)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--meld-csv", type=Path, default=None, help="a MELD-format *_sent_emo.csv")
    parser.add_argument("--faces", type=Path, default=None, help="labelled faces in the kit's npz format")
    parser.add_argument(
        "--speech", type=Path, default=None, help="a folder of RAVDESS- or Emo-DB-named speech files"
    )
    parser.add_argument("--whisper-model", default="base", help="the transcriber's model, for --speech")
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="a local model bundle")
    parser.add_argument("--clips-dir", type=Path, default=None, help="the CSV's dia*_utt*.mp4 folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a report")
    parser.add_argument("--confusion-png", type=Path, default=None, help="write the confusion matrices here")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0)
    return parser


def main(args: argparse.Namespace) -> EvaluationReport | dict[str, object]:
    if args.meld_csv is None and args.faces is None and args.speech is None:
        raise SystemExit("error: give at least one of --meld-csv, --faces, --speech")
    if args.meld_csv is None:
        return _media_main(args)
    if not args.meld_csv.is_file():
        raise SystemExit(f"error: no such CSV: {args.meld_csv}")
    if args.clips_dir is not None and not args.clips_dir.is_dir():
        raise SystemExit(f"error: no such clips folder: {args.clips_dir}")
    report = evaluate_bundle(
        open_bundle(str(args.bundle)),
        args.meld_csv,
        clips_dir=args.clips_dir,
        device=torch_device(args.device),
        batch_size=args.batch_size,
        workers=args.workers,
    )
    if args.confusion_png is not None:
        write_confusion_png(report, args.confusion_png)
    if args.faces is None and args.speech is None:
        print(json.dumps(report.model_dump()) if args.json else text_report(report))
        return report
    media = _media_main(args, quiet=True)
    combined = {"meld": report.model_dump(), **media}
    print(json.dumps(combined) if args.json else text_report(report) + "\n\n" + _media_text(media))
    return combined


def _media_main(args: argparse.Namespace, quiet: bool = False) -> dict[str, object]:
    """--faces and --speech: each modality on labelled data of its own (training.evaluate_media)."""
    from training.evaluate_media import evaluate_faces, evaluate_speech

    out: dict[str, object] = {}
    for flag, path in (("--faces", args.faces), ("--speech", args.speech)):
        if path is not None and not path.exists():
            raise SystemExit(f"error: {flag}: no such file or folder: {path}")
    if args.faces is not None:
        out["faces"] = evaluate_faces(args.bundle, args.faces).model_dump()
    if args.speech is not None:
        out["speech"] = evaluate_speech(args.bundle, args.speech, args.whisper_model).model_dump()
    if not quiet:
        print(json.dumps(out) if args.json else _media_text(out))
    return out


def _media_text(media: dict[str, object]) -> str:
    lines = []
    faces = media.get("faces")
    if isinstance(faces, dict):
        lines += [f"faces {faces['npz']}", _head_line("  face emotion", HeadScores(**faces["emotion"]))]
    speech = media.get("speech")
    if isinstance(speech, dict):
        lines.append(f"speech {speech['directory']} ({speech['files']} files)")
        for view in ("voice", "words", "fused"):
            if speech.get(view):
                lines.append(_head_line(f"  {view} emotion", HeadScores(**speech[view])))
    return "\n".join(lines)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    main(get_args_parser().parse_args())
