"""Sizes and preprocessing parameters of the model; a bundle's manifest stores them."""

from dataclasses import asdict, dataclass, field
from typing import Any

from emotion_contract.labels import EMOTIONS, SENTIMENTS
from shared.assets import MINILM
from shared.model.context import ContextWindow


@dataclass(frozen=True)
class ModelConfig:
    embed_dim: int = 128
    fusion_hidden: int = 256
    dropout: float = 0.3
    n_emotions: int = len(EMOTIONS)
    n_sentiments: int = len(SENTIMENTS)
    # text: a BERT-family backbone, mean-pooled, projected to embed_dim
    text_hidden: int = 384
    text_max_tokens: int = 96
    # which pretrained backbone the text component adapts (shared.assets.text_backbone_dir), and the
    # conversation it reads around each utterance (shared.model.context); 0/0 reads each utterance alone
    text_backbone: str = MINILM
    text_context_before: int = 0
    text_context_after: int = 0
    text_window_tokens: int = 192
    # > 0: a bidirectional GRU of this size per direction reads the file's utterance embeddings in order
    # (shared.model.dialogue); 0: each embedding stays its utterance's alone
    text_dialogue_hidden: int = 0
    # > 0: the GRU also reads who speaks, this many features per utterance (shared.model.dialogue)
    text_dialogue_speakers: int = 0
    # video: R3D-18 on a clip of video_frames frames at frame_size × frame_size
    video_frames: int = 30
    frame_size: int = 112
    video_mean: tuple[float, float, float] = (0.43216, 0.394666, 0.37645)
    video_std: tuple[float, float, float] = (0.22803, 0.22145, 0.216989)
    # audio: "mel-cnn" (the seed's CNN on log-mel spectrograms of 16 kHz mono audio, an embedding into the
    # fusion MLP) or "whisper-base-encoder" (shared.model.voice: a head on pooled Whisper states, an expert
    # whose calibrated distribution is pooled with the others)
    audio_encoder: str = "mel-cnn"
    sample_rate: int = 16_000
    n_mels: int = 64
    n_fft: int = 400
    hop_length: int = 160
    audio_max_s: float = 12.0
    audio_channels: tuple[int, ...] = field(default=(32, 64, 128))

    @property
    def context_window(self) -> ContextWindow:
        return ContextWindow(
            before=self.text_context_before,
            after=self.text_context_after,
            utterance_tokens=self.text_max_tokens,
            window_tokens=self.text_window_tokens,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("video_mean", "video_std", "audio_channels"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)
