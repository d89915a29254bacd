"""Fusion: the three 128-d embeddings (zeroed where missing) and a presence mask → 256 → two heads.

Modalities that come as calibrated distributions of their own (the face, the voice) are pooled with this
network's output by the bundle's fitted rule (`shared.model.pooling`), not fed into it.

The presence mask lets one network serve any subset of modalities (trained with modality dropout),
and lets the fusion service report each modality's own distribution by masking the other two.
Temperatures are fitted after training (on dev) so the softmax outputs are calibrated.
"""

from typing import cast

import torch
from torch import nn

from shared.model.config import ModelConfig

N_MODALITIES = 3  # text, video, audio — the order of the presence mask's columns


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

    def probabilities(
        self, text: torch.Tensor, video: torch.Tensor, audio: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated softmax outputs: logits divided by the fitted temperatures."""
        with torch.no_grad():
            emotion_logits, sentiment_logits = self(text, video, audio, present)
        emotion_t = cast(torch.Tensor, self.emotion_temperature)
        sentiment_t = cast(torch.Tensor, self.sentiment_temperature)
        return (emotion_logits / emotion_t).softmax(-1), (sentiment_logits / sentiment_t).softmax(-1)
