"""What a LoRA text run changed, without the backbone it adapts: the adapters' A and B matrices, the text
projection and the fusion's state (calibration temperatures and face sentiment map included), in one small
safetensors file, with a JSON card beside it that says how it was made. `training.default_bundle` merges it
into the pretrained MiniLM to build the default bundle.

    lora.encoder.layer.N.attention.self.query.lora_A.weight   (r, in)   … lora_B.weight (out, r)
    text_projection.proj.0.weight, text_projection.proj.0.bias
    fusion.fuse.0.weight, …, fusion.emotion_temperature, fusion.face_sentiment_given_emotion, …

Parameters are stored as float16 (training measures what the round trip costs on dev and writes it on the
card); buffers (temperatures, BatchNorm statistics, the face map) keep their dtype.
"""

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

import torch
from peft import PeftModel
from pydantic import BaseModel, Field
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from shared.model.build import load_text_backbone
from shared.model.bundle import load_tensors, sha256_file
from shared.model.config import ModelConfig
from training.evaluate import ViewScores
from training.lora import LoraSettings, load_lora_state, lora_state, with_lora
from training.model import MultimodalClassifier, Temperatures

FORMAT: Final = "emotion-analyzer/text-weights/1"
LORA: Final = "lora."
PROJECTION: Final = "text_projection."
FUSION: Final = "fusion."
LEGACY_FUSION_KEYS: Final = frozenset({"face_weight"})


class TextWeightsError(ValueError):
    pass


class Figures(BaseModel):
    """One output's scores on a split (weighted F1, accuracy and 15-bin ECE of each head)."""

    n: int
    emotion_weighted_f1: float
    sentiment_weighted_f1: float
    emotion_accuracy: float
    sentiment_accuracy: float
    emotion_ece: float
    sentiment_ece: float

    @classmethod
    def of(cls, scores: ViewScores) -> "Figures":
        return cls.model_validate(scores.model_dump(include=set(cls.model_fields)))


class DataFile(BaseModel):
    path: str
    sha256: str
    rows: int


class DialogueTraining(BaseModel):
    """How a dialogue model (shared.model.dialogue) was trained on top of finished text weights."""

    encoder_weights: str = Field(description="the text weights it reads the embeddings of")
    encoder_sha256: str
    encoder_command: str | None
    hidden: int
    best_epoch: int
    seconds_per_epoch: list[float]
    seconds_embedding: float = Field(description="encoding MELD train and dev once, to train on")
    dev_per_epoch: list[Figures] = Field(description="calibrated on dev after each epoch")
    speakers: bool = Field(default=False, description="the GRU reads who speaks (MELD's speaker per line)")
    speaker_dropout: float = Field(default=0.0, description="share of training dialogues read without")
    dev_without_speakers: Figures | None = Field(
        default=None, description="the kept model on dev with every speaker unknown, the same temperatures"
    )


class TextWeightsCard(BaseModel):
    """The JSON beside the weights: how to make them again, from what, and what they score."""

    weights: str = Field(description="the safetensors file's name")
    sha256: str
    size_bytes: int
    created: datetime
    command: str | None = Field(description="the command line that trained them, where it is known")
    args: dict[str, object] = Field(description="every training argument")
    seed: int
    data: list[DataFile] = Field(description="the CSVs trained on (train) and selected on (dev)")
    backbone: str
    lora: LoraSettings
    best_epoch: int
    seconds_per_epoch: list[float]
    temperatures: Temperatures
    dev_uncalibrated: Figures = Field(description="float32 weights, temperature 1")
    dev_calibrated: Figures = Field(description="float32 weights, fitted temperatures")
    dev: Figures = Field(description="these (float16) weights, fitted temperatures: what the bundle serves")
    calibrated_by: str | None = Field(
        default=None, description="the command that refitted the calibration after training, if one did"
    )
    dialogue: DialogueTraining | None = Field(
        default=None, description="the conversation model trained over the encoder's embeddings, if any"
    )

    @property
    def training_seconds(self) -> float:
        """The encoder's epochs, and the dialogue model's with the encoding it trained on."""
        seconds = sum(self.seconds_per_epoch)
        if self.dialogue is not None:
            seconds += sum(self.dialogue.seconds_per_epoch) + self.dialogue.seconds_embedding
        return seconds


def card_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def write_card(card: TextWeightsCard, weights: Path) -> Path:
    path = card_path(weights)
    path.write_text(card.model_dump_json(indent=2) + "\n")
    return path


def read_card(weights: Path) -> TextWeightsCard:
    path = card_path(weights)
    try:
        return TextWeightsCard.model_validate_json(path.read_text())
    except FileNotFoundError:
        raise TextWeightsError(f"{path} is missing: the weights' card must sit beside them") from None


def _stored(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    parameters = {name for name, _ in module.named_parameters()}
    return {
        prefix + key: (value.half() if key in parameters and value.is_floating_point() else value)
        .detach()
        .cpu()
        .contiguous()
        for key, value in module.state_dict().items()
    }


def save_text_weights(path: Path, model: MultimodalClassifier, lora: LoraSettings) -> Path:
    backbone = model.text.backbone
    if not isinstance(backbone, PeftModel):
        raise TextWeightsError("the text backbone has no LoRA adapters: train with --lora-rank")
    tensors = {LORA + key: value.half().cpu().contiguous() for key, value in lora_state(backbone).items()}
    tensors |= _stored(model.text.projection, PROJECTION) | _stored(model.fusion, FUSION)
    metadata = {"format": FORMAT, "model_config": json.dumps(model.config.to_dict()), **lora.to_metadata()}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    save_file(tensors, str(partial), metadata=metadata)
    partial.chmod(0o644)  # safetensors writes 0600; the file is meant to be committed and shared
    partial.replace(path)
    return path


@dataclass(frozen=True)
class TextWeights:
    config: ModelConfig
    lora: LoraSettings
    lora_state: dict[str, torch.Tensor]
    projection: dict[str, torch.Tensor]
    fusion: dict[str, torch.Tensor]
    sha256: str


def load_text_weights(path: Path) -> TextWeights:
    if not path.is_file():
        raise TextWeightsError(f"no text weights at {path}: `make train-text` writes them")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != FORMAT:
        raise TextWeightsError(f"{path} is not a {FORMAT} file (format {metadata.get('format')!r})")
    tensors = load_file(str(path))

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}

    return TextWeights(
        config=ModelConfig.from_dict(json.loads(metadata["model_config"])),
        lora=LoraSettings.from_metadata(metadata),
        lora_state=part(LORA),
        projection=part(PROJECTION),
        # meld-text-v1 also stored the hand-set face exponent of the late fusion that the fitted pooling rule
        # replaced (shared.model.pooling); it is no longer part of the model.
        fusion={k: v for k, v in part(FUSION).items() if k not in LEGACY_FUSION_KEYS},
        sha256=sha256_file(path),
    )


def text_classifier(weights: TextWeights, backbone_dir: Path) -> MultimodalClassifier:
    """The model as training ran it: the pretrained backbone with the adapters beside it (not merged), the
    trained projection and fusion; in eval mode."""
    backbone = with_lora(load_text_backbone(backbone_dir, weights.config), weights.lora)
    load_lora_state(backbone, weights.lora_state)
    model = MultimodalClassifier(weights.config, backbone)
    try:
        load_tensors(model.text.projection, weights.projection)
        load_tensors(model.fusion, weights.fusion)
    except RuntimeError as error:
        raise TextWeightsError(f"the weights do not fit the model: {error}") from error
    return model.eval()
