"""The whole model for training: shared.model's encoders and fusion composed, batch in, two heads' logits out.

Nothing here redefines a layer: a bundle written from this module loads into the services' classes.
"""

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import torch
from pydantic import BaseModel, Field
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from emotion_contract.labels import Modality
from shared.model.audio import AudioEncoder
from shared.model.bundle import LocalBundle
from shared.model.config import ModelConfig
from shared.model.context import WindowInput
from shared.model.dialogue import batch_conversations
from shared.model.fusion import FusionClassifier, calibrated_softmax
from shared.model.text import TextEncoder, mean_pool, pad_windows
from shared.model.video import VideoEncoder
from training.data import MODALITY_COLUMN, Batch

logger = logging.getLogger(__name__)

BACKBONE_PREFIX: Final = "text.backbone."


class MultimodalClassifier(nn.Module):
    def __init__(self, config: ModelConfig, backbone: nn.Module, *, freeze_text: bool = False) -> None:
        super().__init__()
        self.config = config
        self.freeze_text = freeze_text
        self.text = TextEncoder(backbone, config)
        self.video = VideoEncoder(config)
        self.audio = AudioEncoder(config)
        self.fusion = FusionClassifier(config)
        if freeze_text:
            self.text.backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> "MultimodalClassifier":
        super().train(mode)
        if self.freeze_text:
            # A frozen backbone runs as at inference (no dropout), which is also what its cached features are.
            self.text.backbone.eval()
        return self

    def _text(self, batch: Batch) -> torch.Tensor:
        if batch.text_features is not None:
            embedding: torch.Tensor = self.text.projection(batch.text_features)  # (B, 128)
        elif batch.input_ids is None or batch.attention_mask is None:
            return batch.present.new_zeros(len(batch), self.config.embed_dim)
        else:
            embedding = self.text(batch.input_ids, batch.attention_mask, batch.pool_mask)  # (B, 128)
        dialogue = self.text.projection.dialogue
        if dialogue is None:
            return embedding
        spoken = (batch.present[:, MODALITY_COLUMN[Modality.TEXT]] > 0).tolist()
        conversations = batch_conversations(batch.dialogue.tolist(), spoken)
        read: torch.Tensor = dialogue.conversations(embedding, conversations)
        return read

    def _rows(self, encoder: nn.Module, inputs: torch.Tensor | None, present: torch.Tensor) -> torch.Tensor:
        """Runs the encoder only on the rows that have the modality (the rest stay zero, and are masked)."""
        out = present.new_zeros(len(present), self.config.embed_dim)  # (B, 128)
        rows = present.nonzero().flatten()
        if inputs is not None and len(rows):
            out[rows] = encoder(inputs[rows]).to(out.dtype)
        return out

    def forward(self, batch: Batch, present: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 7) emotion and (B, 3) sentiment logits; `present` overrides the batch's flags (B, 3)."""
        present = batch.present if present is None else present
        text = self._text(batch)
        video = self._rows(self.video, batch.video, present[:, 1])
        audio = self._rows(self.audio, batch.audio, present[:, 2])
        logits: tuple[torch.Tensor, torch.Tensor] = self.fusion(text, video, audio, present)
        return logits

    def _untrained_backbone_keys(self) -> set[str]:
        """Backbone entries a checkpoint leaves out: all of a frozen backbone, all but the adapters of a LoRA
        one (they are the file --text-backbone names, not a result); none of a fully fine-tuned one."""
        backbone = self.text.backbone
        trainable = {name for name, p in backbone.named_parameters() if p.requires_grad}
        if all(p.requires_grad for p in backbone.parameters()):
            return set()
        return {BACKBONE_PREFIX + key for key in backbone.state_dict() if key not in trainable}

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The state dict without what training left as it was in the backbone."""
        untrained = self._untrained_backbone_keys()
        return {k: v for k, v in self.state_dict().items() if k not in untrained}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        untrained = self._untrained_backbone_keys()
        missing = [k for k in missing if k not in untrained]
        if missing or unexpected:
            raise KeyError(f"checkpoint does not fit the model: missing {missing}, unexpected {unexpected}")

    @classmethod
    def from_bundle(cls, bundle: LocalBundle) -> "MultimodalClassifier":
        """Every component's weights from a bundle (untrained ones too: the caller masks those)."""
        model = cls(bundle.config, AutoModel.from_pretrained(str(bundle.path("text/backbone"))))
        bundle.load_weights("text", model.text.projection, "text/projection.safetensors")
        bundle.load_weights("video", model.video)
        if bundle.config.audio_encoder == "mel-cnn":  # a voice head is an expert of its own, not this branch
            bundle.load_weights("audio", model.audio)
        bundle.load_weights("fusion", model.fusion)
        return model


class Temperatures(BaseModel):
    """Each head's calibration: its temperature and (empty before the biases existed: zeros) class biases."""

    emotion: float
    sentiment: float
    emotion_bias: list[float] = Field(default_factory=list)
    sentiment_bias: list[float] = Field(default_factory=list)

    def apply(
        self, emotion_logits: torch.Tensor, sentiment_logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated probabilities of (N, 7) and (N, 3) raw logits."""
        return (
            calibrated_softmax(emotion_logits, self.emotion, class_bias(self.emotion_bias, emotion_logits)),
            calibrated_softmax(
                sentiment_logits, self.sentiment, class_bias(self.sentiment_bias, sentiment_logits)
            ),
        )


UNCALIBRATED: Final = Temperatures(emotion=1.0, sentiment=1.0)


def class_bias(values: list[float], logits: torch.Tensor) -> torch.Tensor:
    if not values:
        return logits.new_zeros(logits.shape[-1])
    return torch.tensor(values, dtype=logits.dtype, device=logits.device)


@dataclass(frozen=True)
class Predictions:
    """Raw (uncalibrated) logits of both heads over a dataset, with its labels and presence flags."""

    emotion_logits: torch.Tensor  # (N, 7)
    sentiment_logits: torch.Tensor  # (N, 3)
    emotion: torch.Tensor  # (N,)
    sentiment: torch.Tensor  # (N,)
    present: torch.Tensor  # (N, 3) the flags the model saw

    def __len__(self) -> int:
        return int(self.emotion.shape[0])

    def probabilities(self, calibration: Temperatures = UNCALIBRATED) -> tuple[torch.Tensor, torch.Tensor]:
        return calibration.apply(self.emotion_logits, self.sentiment_logits)


@torch.no_grad()  # not inference_mode: calibration fits a temperature on these logits with autograd
def predict_views(
    model: MultimodalClassifier,
    batches: Iterable[Batch],
    device: torch.device,
    views: Mapping[str, torch.Tensor | None],
) -> dict[str, Predictions]:
    """Logits of every batch under each view: a (3,) 0/1 mask of the modalities it keeps (None: all),
    so one pass over the data (one decode of each clip) scores the fused output and each modality alone."""
    model.eval()
    parts: dict[str, list[tuple[torch.Tensor, ...]]] = {name: [] for name in views}
    for batch in batches:
        batch = batch.to(device)
        for name, keep in views.items():
            present = batch.present if keep is None else batch.present * keep.to(device)
            emotion, sentiment = model(batch, present)
            parts[name].append(
                tuple(t.float().cpu() for t in (emotion, sentiment, batch.emotion, batch.sentiment, present))
            )
    if not any(parts.values()):
        raise ValueError("nothing to predict: the dataset is empty")
    out = {}
    for name, rows in parts.items():
        columns = [torch.cat(column) for column in zip(*rows, strict=True)]
        out[name] = Predictions(
            emotion_logits=columns[0],
            sentiment_logits=columns[1],
            emotion=columns[2].long(),
            sentiment=columns[3].long(),
            present=columns[4],
        )
    return out


def predict(model: MultimodalClassifier, batches: Iterable[Batch], device: torch.device) -> Predictions:
    return predict_views(model, batches, device, {"all": None})["all"]


def load_tokenizer(backbone_dir: Path) -> PreTrainedTokenizerBase:
    tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(str(backbone_dir))
    return tokenizer


def save_backbone(backbone: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dest: Path) -> Path:
    """A Hugging Face folder (config, safetensors weights, tokenizer) for AutoModel and AutoTokenizer."""
    backbone.save_pretrained(str(dest))
    tokenizer.save_pretrained(str(dest))
    return dest


@torch.inference_mode()
def pooled_text_features(
    backbone: nn.Module,
    inputs: Sequence[WindowInput],
    *,
    pad_token_id: int,
    device: torch.device,
    batch_size: int = 64,
) -> torch.Tensor:
    """(N, hidden) pooled backbone outputs of each window, as TextEncoder computes them before its
    projection."""
    was_training = backbone.training
    backbone.eval()
    # Batches of similar length waste little on padding.
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i].input_ids))
    out: torch.Tensor | None = None
    for first in range(0, len(order), batch_size):
        rows = order[first : first + batch_size]
        ids, attention, pool = (t.to(device) for t in pad_windows([inputs[i] for i in rows], pad_token_id))
        hidden = backbone(input_ids=ids, attention_mask=attention).last_hidden_state  # (b, L, H)
        pooled = mean_pool(hidden, pool).float().cpu()  # (b, H)
        if out is None:
            out = torch.zeros(len(inputs), pooled.shape[1])
        out[rows] = pooled
    backbone.train(was_training)
    if out is None:
        raise ValueError("no texts to encode")
    return out


def _backbone_fingerprint(backbone_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(
        p for p in backbone_dir.rglob("*") if p.is_file() and p.suffix in {".json", ".safetensors", ".bin"}
    ):
        digest.update(path.relative_to(backbone_dir).as_posix().encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def cached_text_features(
    backbone: nn.Module,
    inputs: Sequence[WindowInput],
    *,
    backbone_dir: Path,
    pad_token_id: int,
    device: torch.device,
    cache_dir: Path,
) -> torch.Tensor:
    """`pooled_text_features`, kept on disk under a key of the backbone's files and the windows."""
    digest = hashlib.sha256(_backbone_fingerprint(backbone_dir).encode())
    for item in inputs:
        digest.update(repr((item.input_ids, item.pool_mask)).encode() + b"\0")
    path = cache_dir / f"{digest.hexdigest()[:32]}.pt"
    if path.is_file():
        features: torch.Tensor = torch.load(path, map_location="cpu", weights_only=True)
        if features.shape[0] == len(inputs):
            return features
    logger.info("encoding %d texts with the frozen backbone (cached in %s)", len(inputs), path)
    features = pooled_text_features(backbone, inputs, pad_token_id=pad_token_id, device=device)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save(features, partial)
    partial.replace(path)
    return features
