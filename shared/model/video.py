"""Video encoder: R3D-18 over a clip of frames, its 512-d pooled output projected to the embedding."""

import torch
from torch import nn
from torchvision.models.video import r3d_18

from shared.model.config import ModelConfig


class VideoEncoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        backbone = r3d_18(weights=None)
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.proj = nn.Sequential(nn.Linear(512, config.embed_dim), nn.ReLU())

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        # clips: (B, 3, T, H, W), normalised with the Kinetics mean and std
        embedding: torch.Tensor = self.proj(self.backbone(clips))  # (B, 128)
        return embedding
