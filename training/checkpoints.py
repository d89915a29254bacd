"""Checkpoints: everything to resume a run (mid-epoch too), and to rebuild its model without this code."""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import torch

from shared.model.config import ModelConfig
from training.evaluate import ViewScores
from training.model import MultimodalClassifier
from training.train_config import TrainConfig

CHECKPOINT: Final = "checkpoint.pth"
BEST: Final = "best.pth"


@dataclass
class EpochProgress:
    """An epoch's running totals, saved with a mid-epoch checkpoint so that a resumed run finishes it."""

    batches: int = 0
    loss_sum: float = 0.0
    samples: int = 0
    seconds: float = 0.0
    present: list[int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def checkpoint_state(
    *,
    model: MultimodalClassifier,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau,
    epoch: int,
    best_metric: float,
    best_epoch: int,
    dev: ViewScores | None,
    options: TrainConfig,
    config: ModelConfig,
    modality_samples: dict[str, int],
    seconds_per_epoch: list[float],
    eval_seconds_per_epoch: list[float],
    in_epoch: EpochProgress | None = None,
) -> dict[str, Any]:
    """Everything to resume, and to rebuild the model without this code (weights plus ModelConfig).
    `epoch` is the last finished epoch (-1: none); `in_epoch`, the next one's progress when saved mid-way."""
    return {
        "model": model.trainable_state(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "best_metric": best_metric,
        "best_epoch": best_epoch,
        "dev": None if dev is None else dev.model_dump(),
        "args": options.to_dict(),
        "config": config.to_dict(),
        "modality_samples": modality_samples,
        "seconds_per_epoch": seconds_per_epoch,
        "eval_seconds_per_epoch": eval_seconds_per_epoch,
        "in_epoch": None if in_epoch is None else in_epoch.to_dict(),
    }


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    partial.replace(path)  # an interrupted save never leaves a torn checkpoint behind


def link_or_copy(source: Path, dest: Path) -> None:
    """The next save replaces `source` with a new file, so a hard link keeps this epoch's state for free."""
    dest.unlink(missing_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def load_checkpoint(path: Path) -> dict[str, Any]:
    checkpoint: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return checkpoint
