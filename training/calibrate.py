"""Bias-corrected temperature scaling (Alexandari et al., 2020; temperature scaling, Guo et al., 2017, plus a
bias per class): softmax(logits / T + b) per head, fitted on dev by minimising the NLL, stored in the
FusionClassifier's buffers so every service's softmax is calibrated.

The biases undo the prior shift of class-weighted training, which one temperature cannot: on MELD dev, with
five folds by dialogue (fitted on four, measured on the fifth), the default text bundle's emotion ECE was
0.065 with a temperature alone and 0.033 with the biases, its weighted F1 0.582 and 0.584; sentiment ECE
0.028 and 0.027, weighted F1 0.667 and 0.677.

    python -m training.calibrate --bundle DIR --meld-csv dev_sent_emo.csv [--clips-dir DIR]
    python -m training.calibrate --text-weights FILE.safetensors --meld-csv dev_sent_emo.csv

rewrites the bundle's fusion weights (and their checksum in the manifest), or the text weights file and
its card (dev figures, and the command in `calibrated_by`), with the fitted calibration.
"""

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Final, cast

import torch
from torch import nn

from emotion_contract.labels import Modality
from shared.assets import text_backbone_dir
from shared.model.bundle import MANIFEST, FileEntry, open_bundle, read_manifest, save_state, sha256_file
from shared.model.fusion import FusionClassifier
from training.data import MeldDataset, conversation_loader, read_meld_csv
from training.evaluate import FUSED, bundle_predictions, score_view
from training.model import (
    UNCALIBRATED,
    MultimodalClassifier,
    Predictions,
    Temperatures,
    class_bias,
    load_tokenizer,
    predict,
)
from training.text_weights import (
    Figures,
    TextWeightsCard,
    load_text_weights,
    read_card,
    save_text_weights,
    text_classifier,
    write_card,
)

logger = logging.getLogger(__name__)

# A temperature outside this range means the logits carry no usable ranking (or a fitting failure).
MIN_TEMPERATURE: Final = 0.05
MAX_TEMPERATURE: Final = 20.0
# Class biases are fitted only where every class has this many labelled examples.
MIN_PER_CLASS: Final = 10


def fit_calibration(
    logits: torch.Tensor, labels: torch.Tensor, *, bias: bool = True, max_iter: int = 200
) -> tuple[float, list[float]]:
    """The T > 0 (and, with `bias`, the per-class b) minimising the mean NLL of softmax(logits / T + b) on
    (N, K) logits and (N,) labels."""
    if logits.ndim != 2 or len(logits) != len(labels) or len(labels) == 0:
        raise ValueError(
            f"expected (N, K) logits and (N,) labels, got {tuple(logits.shape)}, {tuple(labels.shape)}"
        )
    logits, labels = logits.detach().double().cpu().clone(), labels.detach().long().cpu().clone()
    counts = torch.bincount(labels, minlength=logits.shape[1])
    if bias and int(counts.min()) < MIN_PER_CLASS:
        # A class seen (almost) never would get a bias towards minus infinity: it could never be predicted.
        logger.warning(
            "calibration data hold a class only %d times (< %d): temperature alone",
            counts.min(),
            MIN_PER_CLASS,
        )
        bias = False
    # Fitting log T keeps T positive without a constraint.
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    offsets = torch.zeros(logits.shape[1], dtype=torch.float64, requires_grad=bias)
    parameters = [log_t, offsets] if bias else [log_t]
    optimizer = torch.optim.LBFGS(parameters, lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")
    nll = nn.CrossEntropyLoss()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss: torch.Tensor = nll(logits / log_t.exp() + offsets, labels)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    # Softmax ignores a shift shared by every class: centred, the biases say only how classes differ.
    centred = offsets.detach() - offsets.detach().mean()
    return float(log_t.detach().exp().clamp(MIN_TEMPERATURE, MAX_TEMPERATURE)), centred.tolist()


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """The T > 0 minimising the mean NLL of softmax(logits / T): temperature scaling alone."""
    return fit_calibration(logits, labels, bias=False, max_iter=max_iter)[0]


def set_temperatures(fusion: FusionClassifier, temperatures: Temperatures) -> None:
    cast(torch.Tensor, fusion.emotion_temperature).fill_(temperatures.emotion)
    cast(torch.Tensor, fusion.sentiment_temperature).fill_(temperatures.sentiment)
    for buffer, values in (
        (fusion.emotion_bias, temperatures.emotion_bias),
        (fusion.sentiment_bias, temperatures.sentiment_bias),
    ):
        target = cast(torch.Tensor, buffer)
        target.copy_(class_bias(values, target))


def calibrate_fusion(fusion: FusionClassifier, predictions: Predictions) -> Temperatures:
    """Fits both heads' calibration on `predictions` (raw logits) and writes it into `fusion`."""
    emotion, emotion_bias = fit_calibration(predictions.emotion_logits, predictions.emotion)
    sentiment, sentiment_bias = fit_calibration(predictions.sentiment_logits, predictions.sentiment)
    temperatures = Temperatures(
        emotion=emotion, sentiment=sentiment, emotion_bias=emotion_bias, sentiment_bias=sentiment_bias
    )
    set_temperatures(fusion, temperatures)
    return temperatures


def rewrite_fusion(bundle_root: Path, fusion: FusionClassifier) -> None:
    """Replaces a local bundle's fusion weights and their manifest entry (the manifest is written last)."""
    manifest = read_manifest(bundle_root / MANIFEST)
    path = save_state(fusion, bundle_root / "fusion.safetensors")
    entry = FileEntry(path="fusion.safetensors", sha256=sha256_file(path), size=path.stat().st_size)
    manifest.components["fusion"].files = [entry]
    (bundle_root / MANIFEST).write_text(manifest.model_dump_json(indent=2))


def recalibrate_text_weights(
    weights: Path, dev_csv: Path, *, command: str, model_cache: Path = Path("var/cache")
) -> TextWeightsCard:
    """Refits the calibration of a text weights file on dev (its stored, float16 weights, as served) and
    rewrites the file and its card: sha256, calibration, dev figures, and the command that did it."""
    stored = load_text_weights(weights)
    card = read_card(weights)
    backbone_dir = text_backbone_dir(stored.config.text_backbone, model_cache)
    model = text_classifier(stored, backbone_dir)
    tokenizer = load_tokenizer(backbone_dir)
    dataset = MeldDataset(
        read_meld_csv(dev_csv),
        config=stored.config,
        modalities=frozenset({Modality.TEXT}),
        tokenizer=tokenizer,
    )
    loader = conversation_loader(dataset, batch_size=64, pad_token_id=tokenizer.pad_token_id or 0)
    predictions = predict(model, loader, torch.device("cpu"))
    temperatures = calibrate_fusion(model.fusion, predictions)
    save_text_weights(weights, model, stored.lora)
    served = Figures.of(score_view(predictions, temperatures))
    updated = card.model_copy(
        update={
            "sha256": sha256_file(weights),
            "size_bytes": weights.stat().st_size,
            "temperatures": temperatures,
            "dev_uncalibrated": Figures.of(score_view(predictions, UNCALIBRATED)),
            "dev_calibrated": served,
            "dev": served,
            "calibrated_by": command,
        }
    )
    write_card(updated, weights)
    return updated


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=Path("var/bundles/default"), help="a local bundle")
    parser.add_argument(
        "--text-weights",
        type=Path,
        default=None,
        help="refit a text weights file (+ card) instead of a bundle",
    )
    parser.add_argument("--meld-csv", type=Path, required=True, help="the split to fit on: dev, never test")
    parser.add_argument("--clips-dir", type=Path, default=None, help="the split's dia*_utt*.mp4 folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0)
    return parser


def main(args: argparse.Namespace, command: str = "") -> Temperatures:
    if args.text_weights is not None:
        card = recalibrate_text_weights(args.text_weights, args.meld_csv, command=command)
        calibration: Temperatures = card.temperatures
        return calibration
    bundle = open_bundle(str(args.bundle))
    model = MultimodalClassifier.from_bundle(bundle)
    predictions = bundle_predictions(
        model,
        bundle,
        args.meld_csv,
        clips_dir=args.clips_dir,
        device=torch.device(args.device),
        batch_size=args.batch_size,
        workers=args.workers,
    )
    temperatures = calibrate_fusion(model.fusion, predictions[FUSED])
    rewrite_fusion(args.bundle, model.fusion)
    return temperatures


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    command = shlex.join(["python", "-m", "training.calibrate", *sys.argv[1:]])
    print(json.dumps(main(get_args_parser().parse_args(), command).model_dump()))
