"""Fusion: the three 128-d embeddings (zeroed where missing) and a presence mask → 256 → two heads.

Modalities that come as calibrated distributions of their own (the face, the voice) are pooled with this
network's output by the bundle's fitted rule (`shared.model.pooling`), not fed into it.

The presence mask lets one network serve any subset of modalities (trained with modality dropout),
and lets the fusion service report each modality's own distribution by masking the other two.
A temperature and a bias per class are fitted after training (on dev) so the softmax outputs are
calibrated: softmax(logits / T + b), bias-corrected temperature scaling (Alexandari et al., 2020). The bias
undoes the prior shift that class-weighted training leaves, which one temperature cannot.
"""

from typing import Any, cast

import torch
from torch import nn

from shared.model.config import ModelConfig

N_MODALITIES = 3  # text, video, audio — the order of the presence mask's columns


def calibrated_softmax(
    logits: torch.Tensor, temperature: torch.Tensor | float, bias: torch.Tensor
) -> torch.Tensor:
    """softmax(logits / T + b): bias-corrected temperature scaling of (N, K) raw logits."""
    return (logits / temperature + bias).softmax(-1)


class FusionClassifier(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.fuse = nn.Sequential(
            nn.Linear(N_MODALITIES * config.embed_dim + N_MODALITIES, config.fusion_hidden),
            nn.BatchNorm1d(config.fusion_hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
        )
        self.emotion_head = nn.Linear(config.fusion_hidden, config.n_emotions)
        self.sentiment_head = nn.Linear(config.fusion_hidden, config.n_sentiments)
        self.register_buffer("emotion_temperature", torch.ones(()))
        self.register_buffer("sentiment_temperature", torch.ones(()))
        self.register_buffer("emotion_bias", torch.zeros(config.n_emotions))
        self.register_buffer("sentiment_bias", torch.zeros(config.n_sentiments))
        # P(sentiment | emotion) in MELD's order, from MELD's train labels: gives the experts that only know
        # emotions (the face, the voice) a sentiment too. (The name predates the voice.)
        self.register_buffer(
            "face_sentiment_given_emotion",
            torch.full((config.n_emotions, config.n_sentiments), 1.0 / config.n_sentiments),
        )

    def forward(
        self, text: torch.Tensor, video: torch.Tensor, audio: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # text, video, audio: (B, 128); present: (B, 3) of 0/1 floats
        embeddings = torch.stack([text, video, audio], dim=1) * present.unsqueeze(-1)  # (B, 3, 128)
        hidden = self.fuse(torch.cat([embeddings.flatten(1), present], dim=1))  # (B, 256)
        return self.emotion_head(hidden), self.sentiment_head(hidden)  # (B, 7), (B, 3)

    def calibrated(
        self, emotion_logits: torch.Tensor, sentiment_logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated softmax outputs of raw logits: softmax(logits / T + b) per head."""
        emotion_t, sentiment_t, emotion_b, sentiment_b = (
            cast(torch.Tensor, buffer)
            for buffer in (
                self.emotion_temperature,
                self.sentiment_temperature,
                self.emotion_bias,
                self.sentiment_bias,
            )
        )
        return (
            calibrated_softmax(emotion_logits, emotion_t, emotion_b),
            calibrated_softmax(sentiment_logits, sentiment_t, sentiment_b),
        )

    def probabilities(
        self, text: torch.Tensor, video: torch.Tensor, audio: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated softmax outputs."""
        with torch.no_grad():
            return self.calibrated(*self(text, video, audio, present))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # Weights saved before the class biases existed were calibrated by temperature alone: bias 0.
        for name in ("emotion_bias", "sentiment_bias"):
            state_dict.setdefault(prefix + name, torch.zeros_like(getattr(self, name)))
        super()._load_from_state_dict(state_dict, prefix, *args)
