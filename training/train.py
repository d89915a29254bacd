"""Trains the multimodal model on MELD (MELD.Raw layout) and exports a calibrated model bundle.

    python -m training.train --data DIR [--output-dir var/runs/X] [--epochs N] [--text-backbone PATH]
        [--freeze-text | --lora-rank R] [--device cpu|cuda] [--resume CKPT] [--modalities text,video,audio]
        [--text-weights training/weights/X.safetensors]

Selection and the learning-rate schedule follow the dev split's weighted F1 (--select-metric: the emotion
head's, or the mean of both heads'); MELD's test split is never read. The output directory gets
`checkpoint.pth` (last epoch), `best.pth`, TensorBoard logs under `tensorboard/`, `summary.json` and the
bundle under `bundle/`, whose fusion temperatures are fitted on dev. With --lora-rank the text backbone
trains through LoRA adapters, merged into it in the bundle; --text-weights also writes what the run changed
(adapters, projection, fusion) as the small file `training.default_bundle` builds the default bundle from.
"""

import logging
import random
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm
from transformers import AutoModel, PreTrainedTokenizerBase

from emotion_contract.labels import EMOTIONS, SENTIMENTS, Modality
from shared.assets import TEXT_BACKBONES, text_backbone_dir
from shared.model.bundle import torch_device
from shared.model.config import ModelConfig
from shared.model.face import sentiment_given_emotion
from training.calibrate import calibrate_fusion
from training.checkpoints import (
    BEST,
    CHECKPOINT,
    EpochProgress,
    checkpoint_state,
    link_or_copy,
    load_checkpoint,
    save_checkpoint,
)
from training.data import (
    MODALITY_COLUMN,
    Collate,
    MeldDataset,
    MeldUtterance,
    Split,
    meld_window_inputs,
    read_meld_csv,
    split_clips_dir,
    split_csv,
)
from training.evaluate import ViewScores, score_view
from training.export import export_bundle, write_text_weights
from training.lora import default_targets, with_lora
from training.losses import ModalityDropout, MultitaskLoss, class_weights
from training.model import (
    UNCALIBRATED,
    MultimodalClassifier,
    Predictions,
    Temperatures,
    cached_text_features,
    load_tokenizer,
    predict,
)
from training.sampler import LengthBucketBatchSampler
from training.train_config import SelectMetric, TrainConfig, parse_config

logger = logging.getLogger(__name__)


class RunLog:
    """TensorBoard scalars (SummaryWriter is untyped: this is its one typed doorway)."""

    def __init__(self, log_dir: Path, purge_step: int | None = None) -> None:
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)  # type: ignore[no-untyped-call]

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)  # type: ignore[no-untyped-call]

    def flush(self) -> None:
        self.writer.flush()  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self.writer.close()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class EpochStats:
    loss: float
    seconds: float
    steps: int
    present: dict[str, int]
    """Samples that had each modality (before modality dropout)."""


def train_one_epoch(
    model: MultimodalClassifier,
    criterion: MultitaskLoss,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader[Any],
    device: torch.device,
    epoch: int,
    *,
    dropout: ModalityDropout,
    writer: RunLog,
    first_step: int,
    max_grad_norm: float,
    amp: bool = False,
    progress: bool = True,
    resumed: EpochProgress | None = None,
    save_every_s: float = 0.0,
    save_progress: Callable[[EpochProgress, int], None] | None = None,
) -> EpochStats:
    """One pass over the loader (the rest of one, from `resumed`); every `save_every_s` seconds the totals
    so far go to `save_progress` with the step count, for a mid-epoch checkpoint."""
    model.train()
    done = resumed or EpochProgress()
    started = time.perf_counter() - done.seconds
    last_save = time.perf_counter()
    total, seen, step = done.loss_sum, done.samples, first_step
    present_counts = torch.tensor(done.present or [0] * len(MODALITY_COLUMN))
    bar = tqdm(loader, desc=f"epoch {epoch}", disable=not progress, leave=False, dynamic_ncols=True)
    for batch in bar:
        batch = batch.to(device)
        present_counts += (batch.present > 0).sum(dim=0).cpu()
        present = dropout(batch.present)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            emotion_logits, sentiment_logits = model(batch, present)
        loss = criterion(emotion_logits.float(), sentiment_logits.float(), batch.emotion, batch.sentiment)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the loss became {loss.item()} at step {step}: lower the learning rates"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], max_grad_norm)
        optimizer.step()
        total += loss.item() * len(batch)
        seen += len(batch)
        step += 1
        done.batches += 1
        writer.scalar("train/loss", loss.item(), step)
        bar.set_postfix(loss=f"{total / seen:.4f}")
        if save_progress is not None and save_every_s and time.perf_counter() - last_save >= save_every_s:
            done.loss_sum, done.samples, done.present = total, seen, [int(c) for c in present_counts]
            done.seconds = time.perf_counter() - started
            save_progress(done, step)
            last_save = time.perf_counter()
    return EpochStats(
        loss=total / max(seen, 1),
        seconds=time.perf_counter() - started,
        steps=step - first_step,
        present={m.value: int(present_counts[c]) for m, c in MODALITY_COLUMN.items()},
    )


def evaluate(
    model: MultimodalClassifier, loader: DataLoader[Any], device: torch.device
) -> tuple[Predictions, ViewScores]:
    """Raw-logit predictions over the loader's split and their scores (uncalibrated, temperature 1)."""
    predictions = predict(model, loader, device)
    return predictions, score_view(predictions, UNCALIBRATED)


def selection_metric(scores: ViewScores, metric: SelectMetric) -> float:
    if metric == "emotion":
        return scores.emotion_weighted_f1
    return (scores.emotion_weighted_f1 + scores.sentiment_weighted_f1) / 2


def _parameter_groups(
    model: MultimodalClassifier, modalities: frozenset[Modality], options: TrainConfig
) -> list[dict[str, Any]]:
    """Adam groups with a learning rate each; modalities not trained keep their initial weights."""
    groups: dict[str, tuple[float, list[nn.Parameter]]] = {
        "backbone": (options.lr_backbone, []),
        "lora": (options.lr_lora, []),
        "encoders": (options.lr_encoders, []),
        "projections": (options.lr_projections, []),
        "fusion": (options.lr_fusion, list(model.fusion.parameters())),
    }
    if Modality.TEXT in modalities:
        groups["projections"][1].extend(model.text.projection.parameters())
        if options.lora_rank:
            # get_peft_model left only the adapters trainable
            groups["lora"][1].extend(p for p in model.text.backbone.parameters() if p.requires_grad)
        elif not options.freeze_text:
            groups["backbone"][1].extend(model.text.backbone.parameters())
    if Modality.VIDEO in modalities:
        groups["encoders"][1].extend(model.video.backbone.parameters())
        groups["projections"][1].extend(model.video.proj.parameters())
    if Modality.AUDIO in modalities:
        groups["encoders"][1].extend(model.audio.conv.parameters())
        groups["projections"][1].extend(model.audio.proj.parameters())
    return [
        {"params": params, "lr": lr, "name": name, "weight_decay": options.weight_decay}
        for name, (lr, params) in groups.items()
        if params
    ]


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class TrainSummary(BaseModel):
    best_epoch: int
    select_metric: SelectMetric
    best_metric: float
    modalities: list[str]
    trained_modalities: list[str]
    temperatures: Temperatures
    dev_uncalibrated: ViewScores
    dev: ViewScores
    seconds_per_epoch: list[float]
    eval_seconds_per_epoch: list[float]
    bundle: str
    checkpoint: str
    best_checkpoint: str
    text_weights: str | None = None


@dataclass
class _Splits:
    train: list[MeldUtterance]
    dev: list[MeldUtterance]
    train_clips: Path | None
    dev_clips: Path | None


def _load_splits(data_dir: Path, modalities: frozenset[Modality]) -> _Splits:
    wants_media = bool(modalities & {Modality.VIDEO, Modality.AUDIO})
    clips: dict[Split, Path | None] = {
        split: split_clips_dir(data_dir, split) if wants_media else None for split in ("train", "dev")
    }
    if wants_media and clips["train"] is None:
        logger.warning("no train clip folder in %s: video and audio are masked for every sample", data_dir)
    return _Splits(
        train=read_meld_csv(split_csv(data_dir, "train")),
        dev=read_meld_csv(split_csv(data_dir, "dev")),
        train_clips=clips["train"],
        dev_clips=clips["dev"],
    )


def _datasets(
    splits: _Splits,
    *,
    model: MultimodalClassifier,
    tokenizer: PreTrainedTokenizerBase,
    modalities: frozenset[Modality],
    backbone_dir: Path,
    device: torch.device,
    options: TrainConfig,
) -> tuple[MeldDataset, MeldDataset]:
    config = model.config
    cache = options.freeze_text and options.cache_text_features and Modality.TEXT in modalities

    def dataset(utterances: list[MeldUtterance], clips: Path | None) -> MeldDataset:
        features = None
        if cache:
            features = cached_text_features(
                model.text.backbone,
                meld_window_inputs(utterances, tokenizer, config.context_window),
                backbone_dir=backbone_dir,
                pad_token_id=tokenizer.pad_token_id or 0,
                device=device,
                cache_dir=options.cache_dir,
            )
        return MeldDataset(
            utterances,
            config=config,
            modalities=modalities,
            tokenizer=None if cache else tokenizer,
            text_features=features,
            clips_dir=clips,
        )

    return dataset(splits.train, splits.train_clips), dataset(splits.dev, splits.dev_clips)


def _token_lengths(dataset: MeldDataset) -> list[int] | None:
    """Each sample's number of tokens, where the dataset tokenizes (None: cached features, or no text)."""
    if dataset.text_inputs is None:
        return None
    return [len(item.input_ids) for item in dataset.text_inputs]


def _loader(
    dataset: MeldDataset,
    collate: Collate,
    options: TrainConfig,
    *,
    train: bool,
    lengths: list[int] | None = None,
) -> DataLoader[Any]:
    common: dict[str, Any] = {
        "num_workers": options.workers,
        "persistent_workers": options.workers > 0,
        "pin_memory": options.device.startswith("cuda"),
        "collate_fn": collate,
    }
    if train and lengths is not None and options.bucket_by_length and options.batch_size > 1:
        sampler = LengthBucketBatchSampler(lengths, options.batch_size, seed=options.seed)
        return DataLoader(dataset, batch_sampler=sampler, **common)
    return DataLoader(
        dataset,
        batch_size=options.batch_size,
        shuffle=train,
        # BatchNorm cannot train on a batch of one sample.
        drop_last=train and len(dataset) % options.batch_size == 1,
        generator=torch.Generator().manual_seed(options.seed),
        **common,
    )


def _log_epoch(
    writer: RunLog,
    epoch: int,
    stats: EpochStats,
    scores: ViewScores,
    optimizer: torch.optim.Optimizer,
    eval_s: float,
) -> None:
    for key in (
        "emotion_weighted_f1",
        "sentiment_weighted_f1",
        "emotion_accuracy",
        "sentiment_accuracy",
        "emotion_precision",
        "sentiment_precision",
        "emotion_ece",
        "sentiment_ece",
    ):
        writer.scalar(f"dev/{key}", getattr(scores, key), epoch)
    writer.scalar("train/epoch_loss", stats.loss, epoch)
    writer.scalar("time/train_seconds", stats.seconds, epoch)
    writer.scalar("time/eval_seconds", eval_s, epoch)
    for group in optimizer.param_groups:
        writer.scalar(f"lr/{group['name']}", group["lr"], epoch)
    writer.flush()


def main(options: TrainConfig, command: str | None = None) -> TrainSummary:
    """`command`: the command line that started the run, for the text weights' card."""
    modalities = options.modalities
    lora = options.lora
    if options.threads:
        torch.set_num_threads(options.threads)
    _seed(options.seed)
    device = torch_device(options.device)
    options.output_dir.mkdir(parents=True, exist_ok=True)
    splits = _load_splits(options.data, modalities)
    named = options.text_backbone in TEXT_BACKBONES
    backbone_dir = (
        text_backbone_dir(options.text_backbone, options.model_cache)
        if named
        else Path(options.text_backbone)
    )
    backbone = AutoModel.from_pretrained(str(backbone_dir))
    tokenizer = load_tokenizer(backbone_dir)
    config = ModelConfig(
        text_hidden=backbone.config.hidden_size,
        text_backbone=options.text_backbone if named else str(backbone_dir),
        text_context_before=options.context_before,
        text_context_after=options.context_after,
        text_window_tokens=options.window_tokens,
    )
    if lora is not None:
        lora = replace(lora, target_modules=default_targets(backbone))
        backbone = with_lora(backbone, lora)
    model = MultimodalClassifier(config, backbone, freeze_text=options.freeze_text).to(device)
    train_set, dev_set = _datasets(
        splits,
        model=model,
        tokenizer=tokenizer,
        modalities=modalities,
        backbone_dir=backbone_dir,
        device=device,
        options=options,
    )
    collate = Collate(config, pad_token_id=tokenizer.pad_token_id or 0)
    train_loader = _loader(train_set, collate, options, train=True, lengths=_token_lengths(train_set))
    dev_loader = _loader(dev_set, collate, options, train=False)
    # Video and audio train only where there are clips; the samples that had each are counted as they come.
    usable = modalities if splits.train_clips is not None else modalities & {Modality.TEXT}
    seen = dict.fromkeys(MODALITY_COLUMN.keys(), 0)
    logger.info(
        "train %d, dev %d utterances; modalities %s",
        len(train_set),
        len(dev_set),
        ", ".join(sorted(m.value for m in usable)),
    )

    criterion = MultitaskLoss(
        class_weights([u.emotion for u in splits.train], len(EMOTIONS), options.class_weight_power),
        class_weights([u.sentiment for u in splits.train], len(SENTIMENTS), options.class_weight_power),
        label_smoothing=options.label_smoothing,
        sentiment_weight=options.sentiment_loss_weight,
    ).to(device)
    optimizer = torch.optim.Adam(_parameter_groups(model, usable, options))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=options.lr_factor, patience=options.lr_patience
    )
    dropout = ModalityDropout(options.modality_dropout, options.blank_rate)
    start_epoch, best_metric, best_epoch, step = 0, -1.0, -1, 0
    seconds: list[float] = []
    eval_seconds: list[float] = []
    resumed: EpochProgress | None = None
    bucketed = isinstance(train_loader.batch_sampler, LengthBucketBatchSampler)
    if options.resume is not None:
        checkpoint = load_checkpoint(options.resume)
        if checkpoint["config"] != config.to_dict():
            raise SystemExit(f"error: {options.resume} was trained with another model configuration")
        model.load_trainable_state(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        start_epoch = checkpoint["epoch"] + 1
        best_metric, best_epoch = checkpoint["best_metric"], checkpoint["best_epoch"]
        seen = {Modality(m): n for m, n in checkpoint["modality_samples"].items()}
        seconds = list(checkpoint.get("seconds_per_epoch", []))
        eval_seconds = list(checkpoint.get("eval_seconds_per_epoch", []))
        if checkpoint.get("in_epoch"):
            resumed = EpochProgress(**checkpoint["in_epoch"])
        step = start_epoch * len(train_loader) + (resumed.batches if resumed else 0)
        if isinstance(train_loader.batch_sampler, LengthBucketBatchSampler):
            train_loader.batch_sampler.set_epoch(start_epoch, skip=resumed.batches if resumed else 0)
        elif resumed is not None:
            raise SystemExit(f"error: {options.resume} was saved mid-epoch, which only length buckets resume")
        _seed(options.seed + start_epoch + (resumed.batches if resumed else 0))
        logger.info(
            "resumed from %s at epoch %d%s (best so far %.4f)",
            options.resume,
            start_epoch,
            f", batch {resumed.batches}" if resumed else "",
            best_metric,
        )

    writer = RunLog(options.output_dir / "tensorboard", purge_step=step or None)
    checkpoint_path, best_path = options.output_dir / CHECKPOINT, options.output_dir / BEST
    last_scores: ViewScores | None = None

    def run_state(
        finished: int, dev: ViewScores | None, in_epoch: EpochProgress | None = None
    ) -> dict[str, Any]:
        return checkpoint_state(
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            epoch=finished,
            best_metric=best_metric,
            best_epoch=best_epoch,
            dev=dev,
            options=options,
            config=config,
            # what the finished epochs saw; an epoch in progress counts its own in `in_epoch`
            modality_samples={m.value: n for m, n in seen.items()},
            seconds_per_epoch=seconds,
            eval_seconds_per_epoch=eval_seconds,
            in_epoch=in_epoch,
        )

    def save_mid_epoch(epoch: int) -> Callable[[EpochProgress, int], None]:
        def save(progress: EpochProgress, at_step: int) -> None:
            save_checkpoint(checkpoint_path, run_state(epoch - 1, last_scores, progress))
            logger.info(
                "epoch %d: saved at batch %d of %d (step %d)",
                epoch,
                progress.batches,
                len(train_loader),
                at_step,
            )

        return save

    for epoch in range(start_epoch, options.epochs):
        stats = train_one_epoch(
            model,
            criterion,
            optimizer,
            train_loader,
            device,
            epoch,
            dropout=dropout,
            writer=writer,
            first_step=step,
            max_grad_norm=options.max_grad_norm,
            amp=options.amp,
            progress=not options.no_progress,
            resumed=resumed,
            save_every_s=options.save_every_minutes * 60 if bucketed else 0.0,
            save_progress=save_mid_epoch(epoch),
        )
        resumed = None
        step += stats.steps
        for modality in MODALITY_COLUMN:
            seen[modality] += stats.present[modality.value]
        started = time.perf_counter()
        _, scores = evaluate(model, dev_loader, device)
        eval_s = time.perf_counter() - started
        seconds.append(stats.seconds)
        eval_seconds.append(eval_s)
        metric = selection_metric(scores, options.select_metric)
        scheduler.step(metric)
        _log_epoch(writer, epoch, stats, scores, optimizer, eval_s)
        logger.info(
            "epoch %d: loss %.4f, dev emotion wF1 %.4f acc %.4f, sentiment wF1 %.4f acc %.4f "
            "(train %.1f s, dev %.1f s)",
            epoch,
            stats.loss,
            scores.emotion_weighted_f1,
            scores.emotion_accuracy,
            scores.sentiment_weighted_f1,
            scores.sentiment_accuracy,
            stats.seconds,
            eval_s,
        )
        if metric > best_metric:
            best_metric, best_epoch = metric, epoch
        last_scores = scores
        save_checkpoint(checkpoint_path, run_state(epoch, scores))
        if best_epoch == epoch:
            link_or_copy(checkpoint_path, best_path)
        if options.early_stop and epoch - best_epoch >= options.early_stop:
            logger.info("no better dev score for %d epochs: stopping", options.early_stop)
            break
    writer.close()
    if not best_path.is_file():
        raise SystemExit(f"error: no epoch was trained and {best_path} does not exist")

    trained = frozenset(m for m in usable if seen[m] > 0)
    for modality in modalities - trained:
        logger.warning("no training sample had %s: it stays untrained and masked", modality.value)
    best = load_checkpoint(best_path)
    model.load_trainable_state(best["model"])
    predictions, uncalibrated = evaluate(model, dev_loader, device)
    temperatures = calibrate_fusion(model.fusion, predictions)
    calibrated = score_view(predictions, temperatures)
    logger.info(
        "dev emotion ECE %.4f → %.4f, sentiment ECE %.4f → %.4f (temperatures %.3f, %.3f)",
        uncalibrated.emotion_ece,
        calibrated.emotion_ece,
        uncalibrated.sentiment_ece,
        calibrated.sentiment_ece,
        temperatures.emotion,
        temperatures.sentiment,
    )
    # The face network's sentiment comes from how MELD's train labels pair emotions with sentiments.
    model.fusion.face_sentiment_given_emotion.copy_(  # type: ignore[operator]
        sentiment_given_emotion((u.emotion, u.sentiment) for u in splits.train)
    )
    bundle = export_bundle(
        options.output_dir / "bundle",
        model=model.cpu(),
        tokenizer=tokenizer,
        backbone_dir=backbone_dir,
        trained=trained,
        options=options,
        lora=lora,
        best_epoch=best["best_epoch"],
    )
    text_weights = None
    if lora is not None and options.text_weights is not None and Modality.TEXT in trained:
        text_weights = options.text_weights
        write_text_weights(
            text_weights,
            model=model,
            lora=lora,
            options=options,
            command=command,
            backbone_dir=backbone_dir,
            dev_loader=dev_loader,
            device=device,
            best_epoch=best["best_epoch"],
            temperatures=temperatures,
            uncalibrated=uncalibrated,
            calibrated=calibrated,
            seconds_per_epoch=seconds,
        )
    summary = TrainSummary(
        best_epoch=best["best_epoch"],
        select_metric=options.select_metric,
        best_metric=best["best_metric"],
        modalities=sorted(m.value for m in modalities),
        trained_modalities=sorted(m.value for m in trained),
        temperatures=temperatures,
        dev_uncalibrated=uncalibrated,
        dev=calibrated,
        seconds_per_epoch=seconds,
        eval_seconds_per_epoch=eval_seconds,
        bundle=str(bundle),
        checkpoint=str(checkpoint_path),
        best_checkpoint=str(best_path),
        text_weights=None if text_weights is None else str(text_weights),
    )
    (options.output_dir / "summary.json").write_text(summary.model_dump_json(indent=2))
    return summary


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    command = shlex.join(["python", "-m", "training.train", *sys.argv[1:]])
    main(parse_config(description=__doc__), command=command)
