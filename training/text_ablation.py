"""The text encoder's ablation: for each set of trained text weights (MiniLM or MPNet, alone or with
context), its MELD dev figures from its card, its training time, and its inference time per utterance on
this machine's CPU, measured here through the services' featurizer over MELD dev's dialogues in order.

    python -m training.text_ablation WEIGHTS.safetensors [WEIGHTS …] [--threads 2] [--json]
    python -m training.text_ablation --speed all-mpnet-base-v2:2:1 [--speed BACKBONE:BEFORE:AFTER …]

`--speed` times an encoder before any weights are trained for it (an initial bundle of that backbone and
window: the cost of inference does not depend on the weights' values), to plan what to train.

Each weights file is built into a bundle (as `make model` builds the default one) in a scratch directory,
then timed: a warm-up dialogue, then every dev dialogue, each as one transcript. Figures, not assertions;
the dev figures are the card's (the stored float16 weights, temperatures fitted on dev). MELD's test split is
never read.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Final

import torch
from pydantic import BaseModel

from shared.model.build import build_initial_bundle
from shared.model.bundle import open_bundle
from shared.model.config import ModelConfig
from shared.model.inference import TextFeaturizer
from training.data import MeldUtterance, dialogue_rows, read_meld_csv
from training.default_bundle import build_default_bundle, context_description
from training.text_weights import load_text_weights, read_card

DEV_CSV: Final = Path("../shared/data/meld/dev_sent_emo.csv")
BUDGET_MS: Final = 40.0


class AblationRow(BaseModel):
    weights: str
    backbone: str
    context: str
    # None on a row timed before its encoder was trained (--speed)
    emotion_weighted_f1: float | None = None
    sentiment_weighted_f1: float | None = None
    emotion_ece: float | None = None
    sentiment_ece: float | None = None
    train_minutes: float | None = None
    epochs: int | None = None
    dialogue_epochs: int | None = None
    train_threads: int | None = None
    ms_per_utterance: float
    ms_per_utterance_spread: tuple[float, float]
    threads: int


def dialogues(utterances: list[MeldUtterance]) -> list[list[str]]:
    """Each dialogue's texts in Utterance_ID order: what a transcript of it would hold."""
    return [[utterances[i].text for i in rows] for rows in dialogue_rows(utterances)]


def time_featurizer(featurizer: TextFeaturizer, conversations: list[list[str]], repeats: int) -> list[float]:
    """Milliseconds per utterance of each repeat over all the conversations."""
    featurizer.embed(conversations[0])  # warm-up: first-call allocations
    n = sum(len(c) for c in conversations)
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        for conversation in conversations:
            featurizer.embed(conversation)
        out.append((time.perf_counter() - started) * 1000 / n)
    return out


def measure(weights: Path, conversations: list[list[str]], threads: int, repeats: int) -> AblationRow:
    card = read_card(weights)
    config = load_text_weights(weights).config
    with tempfile.TemporaryDirectory(prefix="ablation-") as scratch:
        build_default_bundle(Path(scratch) / "bundle", weights=weights)
        featurizer = TextFeaturizer(open_bundle(str(Path(scratch) / "bundle"), components=("text",)))
        torch.set_num_threads(threads)
        times = time_featurizer(featurizer, conversations, repeats)
    dev = card.dev
    threads_used = card.args.get("threads")
    return AblationRow(
        weights=weights.name,
        backbone=config.text_backbone,
        context=context_description(config),
        emotion_weighted_f1=dev.emotion_weighted_f1,
        sentiment_weighted_f1=dev.sentiment_weighted_f1,
        emotion_ece=dev.emotion_ece,
        sentiment_ece=dev.sentiment_ece,
        train_minutes=card.training_seconds / 60,
        epochs=len(card.seconds_per_epoch),
        dialogue_epochs=len(card.dialogue.seconds_per_epoch) if card.dialogue is not None else None,
        train_threads=threads_used if isinstance(threads_used, int) else None,
        ms_per_utterance=statistics.median(times),
        ms_per_utterance_spread=(min(times), max(times)),
        threads=threads,
    )


def measure_untrained(spec: str, conversations: list[list[str]], threads: int, repeats: int) -> AblationRow:
    """`BACKBONE:BEFORE:AFTER`: the inference time of that encoder and window, no weights trained."""
    backbone, before, after = spec.split(":")
    with tempfile.TemporaryDirectory(prefix="ablation-") as scratch:
        manifest = build_initial_bundle(
            Path(scratch) / "bundle", text_backbone=backbone, context=(int(before), int(after))
        )
        featurizer = TextFeaturizer(open_bundle(str(Path(scratch) / "bundle"), components=("text",)))
        torch.set_num_threads(threads)
        times = time_featurizer(featurizer, conversations, repeats)
    config = ModelConfig.from_dict(dict(manifest.config))
    return AblationRow(
        weights="(not trained)",
        backbone=backbone,
        context=context_description(config),
        ms_per_utterance=statistics.median(times),
        ms_per_utterance_spread=(min(times), max(times)),
        threads=threads,
    )


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def markdown(rows: list[AblationRow]) -> str:
    lines = [
        "| weights | backbone | context | emotion wF1 | sentiment wF1 | emotion ECE | sentiment ECE "
        "| training | inference ms/utt |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        within = "" if r.ms_per_utterance <= BUDGET_MS else f" (over {BUDGET_MS:.0f})"
        training = (
            "-"
            if r.train_minutes is None
            else f"{r.train_minutes:.0f} min, {r.epochs} epochs, {r.train_threads or '?'} threads"
            + (f", then the GRU {r.dialogue_epochs} epochs" if r.dialogue_epochs else "")
        )
        lines.append(
            f"| {r.weights} | {r.backbone} | {r.context} | {_figure(r.emotion_weighted_f1)} "
            f"| {_figure(r.sentiment_weighted_f1)} | {_figure(r.emotion_ece)} | {_figure(r.sentiment_ece)} "
            f"| {training} | {r.ms_per_utterance:.1f}{within} |"
        )
    return "\n".join(lines)


def machine_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU the times were read on, and the matrix instructions it has: the same command ran 2.4-2.9
    times slower on one of this project's 2-core machines than on two others."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return "unknown CPU"
    model = next(
        (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), ""
    )
    flags = next(
        (set(line.split(":", 1)[1].split()) for line in text.splitlines() if line.startswith("flags")), set()
    )
    extensions = [name for name in ("avx2", "avx512f", "avx512_vnni", "amx_bf16") if name in flags]
    return f"{model or 'unknown CPU'}, {os.cpu_count()} CPUs; {' '.join(extensions) or 'no AVX2'}"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("weights", type=Path, nargs="*", help="text weights files (+ their .json cards)")
    parser.add_argument(
        "--speed",
        action="append",
        default=[],
        metavar="BACKBONE:BEFORE:AFTER",
        help="also time an untrained encoder, e.g. all-mpnet-base-v2:2:1",
    )
    parser.add_argument("--dev-csv", type=Path, default=DEV_CSV)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads while timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dialogues", type=int, default=0, help="time only the first N dialogues (0: all)")
    parser.add_argument("--json", action="store_true")
    return parser


def main(args: argparse.Namespace) -> list[AblationRow]:
    conversations = dialogues(read_meld_csv(args.dev_csv))
    if args.dialogues:
        conversations = conversations[: args.dialogues]
    rows = [measure(w, conversations, args.threads, args.repeats) for w in args.weights]
    rows += [measure_untrained(spec, conversations, args.threads, args.repeats) for spec in args.speed]
    if args.json:
        print(json.dumps([r.model_dump() for r in rows], indent=2))
    else:
        n = sum(len(c) for c in conversations)
        print(f"inference: {n} MELD dev utterances in {len(conversations)} dialogues, {args.threads} threads")
        print(f"machine: {machine_description()}")
        print(markdown(rows))
    return rows


if __name__ == "__main__":
    main(get_args_parser().parse_args())
