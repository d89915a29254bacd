"""Trains a dialogue model (shared.model.dialogue) on top of finished text weights, in minutes on a CPU:

    python -m training.train_dialogue --text-weights training/weights/meld-text-mpnet-v1.safetensors \\
        --out training/weights/meld-text-mpnet-dialogue-v1.safetensors

The encoder, its projection and the fusion stay as they are. Each MELD utterance (train and dev) is encoded
once, as the bundle serves it; the GRU then learns, over whole dialogues in Utterance_ID order, what to add
to each embedding so that the frozen fusion reads it better. With --speakers the GRU also reads who speaks
(MELD's speaker of each line; a share of the training dialogues, --speaker-dropout, read without, so that
a file whose speakers are unknown is read as well), and dev is scored both with its speakers and without;
the model is chosen with them, as the services give the diarizer's labels. After each epoch the
fusion's calibration is fitted on dev and the calibrated figures are scored; the epoch with the best mean
of both heads' weighted F1 is kept (dev selects and calibrates, as for every text weights file; no test
split is read). The output is a text weights file like any other: the same adapters, the projection with
the GRU inside it, the recalibrated fusion, and a card whose `dialogue` section says how the GRU was made.
"""

import argparse
import copy
import json
import logging
import shlex
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from emotion_contract.labels import EMOTIONS, SENTIMENTS
from shared.assets import text_backbone_dir
from shared.model.bundle import sha256_file
from shared.model.dialogue import SPEAKER_FEATURES, DialogueContext
from training.calibrate import calibrate_fusion
from training.data import MeldUtterance, dialogue_rows, meld_window_inputs, read_meld_csv, split_csv
from training.evaluate import score_view
from training.losses import class_weights
from training.model import (
    UNCALIBRATED,
    MultimodalClassifier,
    Predictions,
    load_tokenizer,
    pooled_text_features,
)
from training.text_weights import (
    DataFile,
    DialogueTraining,
    Figures,
    load_text_weights,
    read_card,
    save_text_weights,
    text_classifier,
    write_card,
)

logger = logging.getLogger(__name__)

TEXT_ONLY: Final = torch.tensor([1.0, 0.0, 0.0])


@dataclass(frozen=True)
class EncodedSplit:
    """A split's utterance embeddings as the bundle's encoder gives them, its labels and conversations."""

    embeddings: torch.Tensor  # (N, 128)
    emotion: torch.Tensor  # (N,)
    sentiment: torch.Tensor  # (N,)
    dialogues: list[list[int]]  # rows of each dialogue in Utterance_ID order, silent ones left out
    speakers: list[str]  # who speaks each row

    @classmethod
    def encode(
        cls, model: MultimodalClassifier, utterances: list[MeldUtterance], tokenizer: PreTrainedTokenizerBase
    ) -> "EncodedSplit":
        pad_token_id = tokenizer.pad_token_id or 0
        inputs = meld_window_inputs(utterances, tokenizer, model.config.context_window)
        pooled = pooled_text_features(
            model.text.backbone, inputs, pad_token_id=pad_token_id, device=torch.device("cpu")
        )
        with torch.no_grad():
            embeddings = model.text.projection.proj(pooled)
        return cls(
            embeddings=embeddings,
            emotion=torch.tensor([u.emotion for u in utterances]),
            sentiment=torch.tensor([u.sentiment for u in utterances]),
            dialogues=[[i for i in rows if utterances[i].text] for rows in dialogue_rows(utterances)],
            speakers=[u.speaker for u in utterances],
        )


def read_dialogues(
    model: MultimodalClassifier,
    split: EncodedSplit,
    dialogues: list[list[int]],
    unknown: set[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The dialogues' rows of `split` read by the GRU, (n, 128), and those rows (in that order); the
    speakers of the dialogues at the indices `unknown` (all of them with `unknown` None where the GRU reads
    no speakers) are not given."""
    dialogue = model.text.projection.dialogue
    assert dialogue is not None
    rows = torch.tensor([i for d in dialogues for i in d])
    hidden = {row for k, d in enumerate(dialogues) if unknown is not None and k in unknown for row in d}
    speakers = [None if i in hidden else who for i, who in enumerate(split.speakers)]
    read = dialogue.conversations(
        split.embeddings, dialogues, speakers if dialogue.speaker_features else None
    )
    return read[rows], rows


def text_logits(model: MultimodalClassifier, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The fusion's (emotion, sentiment) logits of (n, 128) text embeddings, the text alone present."""
    blank = torch.zeros_like(text)
    logits: tuple[torch.Tensor, torch.Tensor] = model.fusion(
        text, blank, blank, TEXT_ONLY.expand(len(text), 3)
    )
    return logits


def split_predictions(
    model: MultimodalClassifier, split: EncodedSplit, text: torch.Tensor, rows: torch.Tensor
) -> Predictions:
    """Raw logits and labels of `split`'s `rows`, whose embeddings (as read) are `text`."""
    with torch.no_grad():
        emotion, sentiment = text_logits(model, text)
    return Predictions(
        emotion_logits=emotion,
        sentiment_logits=sentiment,
        emotion=split.emotion[rows],
        sentiment=split.sentiment[rows],
        present=TEXT_ONLY.expand(len(rows), 3).clone(),
    )


def dev_predictions(model: MultimodalClassifier, dev: EncodedSplit, *, speakers: bool = True) -> Predictions:
    model.eval()
    with torch.no_grad():
        unknown = None if speakers else set(range(len(dev.dialogues)))
        text, rows = read_dialogues(model, dev, dev.dialogues, unknown)
    return split_predictions(model, dev, text, rows)


def calibrated_figures(model: MultimodalClassifier, dev: EncodedSplit) -> Figures:
    predictions = dev_predictions(model, dev)
    return Figures.of(score_view(predictions, calibrate_fusion(copy.deepcopy(model.fusion), predictions)))


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--text-weights", type=Path, required=True, help="the encoder's text weights")
    parser.add_argument("--out", type=Path, required=True, help="the text weights to write (+ .json)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/meld"), help="MELD's CSVs")
    parser.add_argument("--hidden", type=int, default=128, help="GRU size per direction")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument("--dialogues-per-batch", type=int, default=16)
    parser.add_argument("--class-weight-power", type=float, default=0.5)
    parser.add_argument("--speakers", action="store_true", help="the GRU reads who speaks each line")
    parser.add_argument("--speaker-dropout", type=float, default=0.3, help="with --speakers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model-cache", type=Path, default=Path("var/cache"))
    return parser


def train_dialogue(args: argparse.Namespace, command: str | None = None) -> Path:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    stored = load_text_weights(args.text_weights)
    encoder_card = read_card(args.text_weights)
    if stored.config.text_dialogue_hidden:
        raise SystemExit(f"error: {args.text_weights} already carries a dialogue model")
    backbone_dir = text_backbone_dir(stored.config.text_backbone, args.model_cache)
    model = text_classifier(stored, backbone_dir)
    tokenizer = load_tokenizer(backbone_dir)
    csvs = {split: split_csv(args.data, split) for split in ("train", "dev")}
    started = time.perf_counter()
    train, dev = (EncodedSplit.encode(model, read_meld_csv(csvs[s]), tokenizer) for s in ("train", "dev"))
    seconds_embedding = time.perf_counter() - started
    logger.info("encoded train and dev in %.0f s", seconds_embedding)

    speaker_features = SPEAKER_FEATURES if args.speakers else 0
    model.config = replace(
        stored.config, text_dialogue_hidden=args.hidden, text_dialogue_speakers=speaker_features
    )
    dialogue = DialogueContext(model.config.embed_dim, args.hidden, model.config.dropout, speaker_features)
    model.text.projection.dialogue = dialogue
    model.requires_grad_(False)
    dialogue.requires_grad_(True)
    criterion_emotion = nn.CrossEntropyLoss(
        weight=class_weights(train.emotion.tolist(), len(EMOTIONS), args.class_weight_power)
    )
    criterion_sentiment = nn.CrossEntropyLoss(
        weight=class_weights(train.sentiment.tolist(), len(SENTIMENTS), args.class_weight_power)
    )
    optimizer = torch.optim.AdamW(dialogue.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    order = np.random.default_rng(args.seed)
    per_epoch: list[Figures] = []
    seconds: list[float] = []
    best_state, best_epoch, best_score = copy.deepcopy(dialogue.state_dict()), 0, -1.0
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        model.eval()  # the fusion's BatchNorm keeps its statistics; only the GRU's dropout trains
        dialogue.train()
        shuffled = order.permutation(len(train.dialogues))
        for first in range(0, len(shuffled), args.dialogues_per_batch):
            batch = [train.dialogues[i] for i in shuffled[first : first + args.dialogues_per_batch]]
            # Drawn only with speakers, so that a run without them shuffles as it always did.
            unknown = (
                {k for k in range(len(batch)) if order.random() < args.speaker_dropout}
                if args.speakers
                else None
            )
            text, rows = read_dialogues(model, train, batch, unknown)
            emotion, sentiment = text_logits(model, text)
            loss = criterion_emotion(emotion, train.emotion[rows]) + criterion_sentiment(
                sentiment, train.sentiment[rows]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - started)
        figures = calibrated_figures(model, dev)
        per_epoch.append(figures)
        score = (figures.emotion_weighted_f1 + figures.sentiment_weighted_f1) / 2
        logger.info(
            "epoch %d: dev (calibrated) emotion wF1 %.4f, sentiment wF1 %.4f, %.1f s",
            epoch,
            figures.emotion_weighted_f1,
            figures.sentiment_weighted_f1,
            seconds[-1],
        )
        if score > best_score:
            best_state, best_epoch, best_score = copy.deepcopy(dialogue.state_dict()), epoch, score
    dialogue.load_state_dict(best_state)
    model.eval()

    best = dev_predictions(model, dev)
    uncalibrated = Figures.of(score_view(best, UNCALIBRATED))
    temperatures = calibrate_fusion(model.fusion, best)
    calibrated = Figures.of(score_view(best, temperatures))
    without = Figures.of(score_view(dev_predictions(model, dev, speakers=False), temperatures))
    logger.info(
        "kept epoch %d: dev emotion wF1 %.4f with speakers, %.4f without",
        best_epoch,
        calibrated.emotion_weighted_f1,
        without.emotion_weighted_f1,
    )
    save_text_weights(args.out, model, stored.lora)
    # What the bundle serves: the weights as stored (float16 parameters), read back and scored again.
    served_model = text_classifier(load_text_weights(args.out), backbone_dir)
    served = Figures.of(score_view(dev_predictions(served_model, dev), temperatures))
    card = encoder_card.model_copy(
        update={
            "weights": args.out.name,
            "sha256": sha256_file(args.out),
            "size_bytes": args.out.stat().st_size,
            "created": datetime.now(UTC),
            "command": command,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "seed": args.seed,
            "data": [
                DataFile(path=str(csv), sha256=sha256_file(csv), rows=len(read_meld_csv(csv)))
                for csv in csvs.values()
            ],
            "temperatures": temperatures,
            "dev_uncalibrated": uncalibrated,
            "dev_calibrated": calibrated,
            "dev": served,
            "calibrated_by": None,
            "dialogue": DialogueTraining(
                encoder_weights=args.text_weights.name,
                encoder_sha256=stored.sha256,
                encoder_command=encoder_card.command,
                hidden=args.hidden,
                best_epoch=best_epoch,
                seconds_per_epoch=seconds,
                seconds_embedding=seconds_embedding,
                dev_per_epoch=per_epoch,
                speakers=args.speakers,
                speaker_dropout=args.speaker_dropout if args.speakers else 0.0,
                dev_without_speakers=without if args.speakers else None,
            ),
        }
    )
    write_card(card, args.out)
    out: Path = args.out
    return out


def main(argv: list[str] | None = None) -> Path:
    argv = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "-m", "training.train_dialogue", *argv])
    out = train_dialogue(get_args_parser().parse_args(argv), command)
    print(json.dumps(read_card(out).dev.model_dump()))
    return out


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main()
