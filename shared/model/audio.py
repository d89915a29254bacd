"""Audio encoder: a small CNN over log-mel spectrograms, pooled over time and frequency."""

import torch
from torch import nn

from shared.model.config import ModelConfig


class AudioEncoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels_in = 1
        for channels_out in config.audio_channels:
            layers += [
                nn.Conv2d(channels_in, channels_out, kernel_size=3, padding=1),
                nn.BatchNorm2d(channels_out),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            channels_in = channels_out
        self.conv = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.proj = nn.Sequential(nn.Linear(channels_in, config.embed_dim), nn.ReLU())

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        # mels: (B, 1, n_mels, frames), log-mel normalised per utterance
        pooled = self.pool(self.conv(mels)).flatten(1)  # (B, C)
        embedding: torch.Tensor = self.proj(pooled)  # (B, 128)
        return embedding
