"""Temperature scaling (Guo et al., 2017): one temperature per head, fitted on dev by minimising the NLL,
stored in the FusionClassifier's buffers so every service's softmax is calibrated.

    python -m training.calibrate --bundle DIR --meld-csv dev_sent_emo.csv [--clips-dir DIR]

rewrites the bundle's fusion weights (and their checksum in the manifest) with the fitted temperatures.
"""

import argparse
import json
import logging
from pathlib import Path
from typing import Final, cast

import torch
from pydantic import BaseModel
from torch import nn

from shared.model.bundle import MANIFEST, FileEntry, open_bundle, read_manifest, save_state, sha256_file
from shared.model.fusion import FusionClassifier
from training.evaluate import FUSED, bundle_predictions
from training.model import MultimodalClassifier, Predictions

logger = logging.getLogger(__name__)

# A temperature outside this range means the logits carry no usable ranking (or a fitting failure).
MIN_TEMPERATURE: Final = 0.05
MAX_TEMPERATURE: Final = 20.0


class Temperatures(BaseModel):
    emotion: float
    sentiment: float


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """The T > 0 minimising the mean NLL of softmax(logits / T) on (N, K) logits and (N,) labels."""
    if logits.ndim != 2 or len(logits) != len(labels) or len(labels) == 0:
        raise ValueError(
            f"expected (N, K) logits and (N,) labels, got {tuple(logits.shape)}, {tuple(labels.shape)}"
        )
    logits, labels = logits.detach().double().cpu().clone(), labels.detach().long().cpu().clone()
    # Fitting log T keeps T positive without a constraint.
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")
    nll = nn.CrossEntropyLoss()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss: torch.Tensor = nll(logits / log_t.exp(), labels)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    return float(log_t.detach().exp().clamp(MIN_TEMPERATURE, MAX_TEMPERATURE))


def set_temperatures(fusion: FusionClassifier, temperatures: Temperatures) -> None:
    cast(torch.Tensor, fusion.emotion_temperature).fill_(temperatures.emotion)
    cast(torch.Tensor, fusion.sentiment_temperature).fill_(temperatures.sentiment)


def calibrate_fusion(fusion: FusionClassifier, predictions: Predictions) -> Temperatures:
    """Fits both heads' temperatures on `predictions` (raw logits) and writes them into `fusion`."""
    temperatures = Temperatures(
        emotion=fit_temperature(predictions.emotion_logits, predictions.emotion),
        sentiment=fit_temperature(predictions.sentiment_logits, predictions.sentiment),
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


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=Path("var/bundles/default"), help="a local bundle")
    parser.add_argument("--meld-csv", type=Path, required=True, help="the split to fit on: dev, never test")
    parser.add_argument("--clips-dir", type=Path, default=None, help="the split's dia*_utt*.mp4 folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0)
    return parser


def main(args: argparse.Namespace) -> Temperatures:
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
    print(json.dumps(main(get_args_parser().parse_args()).model_dump()))
