"""What a run leaves behind: the bundle the services load, and the small text weights with their card."""

import json
import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from emotion_contract.labels import Modality
from shared.model.build import add_face, text_backbone_source
from shared.model.bundle import BundleWriter, sha256_file
from training.data import MELD_SOURCE, read_meld_csv, split_csv
from training.evaluate import ViewScores, score_view
from training.lora import LoraSettings, merged_backbone
from training.model import MultimodalClassifier, Temperatures, predict, save_backbone
from training.text_weights import (
    DataFile,
    Figures,
    TextWeightsCard,
    load_text_weights,
    save_text_weights,
    text_classifier,
    write_card,
)
from training.train_config import TrainConfig

logger = logging.getLogger(__name__)


def _source(name: str, trained: bool, detail: str, best_epoch: int) -> str:
    if not trained:
        return f"{name}: seeded initial weights (torch.manual_seed), not trained in this run"
    return f"{name}: {detail}; trained on {MELD_SOURCE} train split, selected on dev (epoch {best_epoch})"


def export_bundle(
    root: Path,
    *,
    model: MultimodalClassifier,
    tokenizer: PreTrainedTokenizerBase,
    backbone_dir: Path,
    trained: frozenset[Modality],
    options: TrainConfig,
    lora: LoraSettings | None,
    best_epoch: int,
) -> Path:
    writer = BundleWriter(
        root,
        name="emotion-analyzer-meld",
        version=options.bundle_version,
        config=model.config,
        notes="trained by training.train with " + json.dumps(options.to_dict(), sort_keys=True),
    )
    origin = text_backbone_source(model.config.text_backbone)
    text_trained = Modality.TEXT in trained
    backbone = model.text.backbone
    with tempfile.TemporaryDirectory() as scratch:
        if options.freeze_text or not text_trained:
            text_dir, how = backbone_dir, f"backbone {origin}, as shipped (frozen)"
        elif lora is not None:
            backbone = merged_backbone(backbone)
            how = f"backbone {origin}, LoRA (rank {lora.rank}, alpha {lora.alpha}) merged into its weights"
            text_dir = save_backbone(backbone, tokenizer, Path(scratch))
        else:
            text_dir, how = Path(scratch), f"backbone {origin}, fine-tuned"
            save_backbone(backbone, tokenizer, text_dir)  # type: ignore[arg-type]
        parameters = sum(p.numel() for p in (*backbone.parameters(), *model.text.projection.parameters()))
        writer.add_text(
            text_dir,
            model.text.projection,
            trained=text_trained,
            source=_source("text", text_trained, f"{how}; mean-pooled → 128 projection", best_epoch),
            parameters=parameters,
        )
    for name, module, detail in (
        (Modality.VIDEO, model.video, "R3D-18 (no pretrained weights) → 128"),
        (Modality.AUDIO, model.audio, "log-mel CNN → 128"),
    ):
        writer.add_module(
            name.value,
            module,
            trained=name in trained,
            source=_source(name.value, name in trained, detail, best_epoch),
            half=name is Modality.VIDEO,
        )
    writer.add_module(
        "fusion",
        model.fusion,
        trained=True,
        source=_source("fusion", True, "384+3 → 256 MLP, two heads, temperatures fitted on dev", best_epoch),
    )
    from training.face import DEFAULT_FACE_WEIGHTS, face_source

    face = DEFAULT_FACE_WEIGHTS if DEFAULT_FACE_WEIGHTS.is_file() else None
    add_face(writer, face, source=face_source(face) if face else "")
    writer.write()
    return root


def write_text_weights(
    path: Path,
    *,
    model: MultimodalClassifier,
    lora: LoraSettings,
    options: TrainConfig,
    command: str | None,
    backbone_dir: Path,
    dev_loader: DataLoader[Any],
    device: torch.device,
    best_epoch: int,
    temperatures: Temperatures,
    uncalibrated: ViewScores,
    calibrated: ViewScores,
    seconds_per_epoch: list[float],
) -> TextWeightsCard:
    """The run's adapters, projection and fusion as a small file, and its card: how it was made, and what
    the stored (float16) weights score on dev, on a freshly loaded pretrained backbone."""
    save_text_weights(path, model, lora)
    stored = text_classifier(load_text_weights(path), backbone_dir).to(device)
    served = score_view(predict(stored, dev_loader, device), temperatures)
    logger.info(
        "stored text weights: dev emotion wF1 %.4f (float32 %.4f), sentiment wF1 %.4f (float32 %.4f)",
        served.emotion_weighted_f1,
        calibrated.emotion_weighted_f1,
        served.sentiment_weighted_f1,
        calibrated.sentiment_weighted_f1,
    )
    origin = text_backbone_source(model.config.text_backbone)
    card = TextWeightsCard(
        weights=path.name,
        sha256=sha256_file(path),
        size_bytes=path.stat().st_size,
        created=datetime.now(UTC).replace(microsecond=0),
        command=command,
        args=options.to_dict(),
        seed=options.seed,
        data=[
            DataFile(path=str(csv), sha256=sha256_file(csv), rows=len(read_meld_csv(csv)))
            for csv in (split_csv(options.data, "train"), split_csv(options.data, "dev"))
        ],
        backbone=origin,
        lora=lora,
        best_epoch=best_epoch,
        seconds_per_epoch=seconds_per_epoch,
        temperatures=temperatures,
        dev_uncalibrated=Figures.of(uncalibrated),
        dev_calibrated=Figures.of(calibrated),
        dev=Figures.of(served),
    )
    write_card(card, path)
    return card
