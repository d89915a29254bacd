"""Text encoder: a BERT-family transformer, mean-pooled over tokens, projected to the shared embedding."""

import torch
from torch import nn

from shared.model.config import ModelConfig


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # (B, H)


class TextProjection(nn.Module):
    """What the bundle's text component trains on top of the (frozen or fine-tuned) backbone."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(config.text_hidden, config.embed_dim), nn.ReLU())

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        embedding: torch.Tensor = self.proj(pooled)  # (B, 128)
        return embedding


class TextEncoder(nn.Module):
    def __init__(self, backbone: nn.Module, config: ModelConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection = TextProjection(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask
        ).last_hidden_state  # (B, L, H)
        embedding: torch.Tensor = self.projection(mean_pool(hidden, attention_mask))  # (B, 128)
        return embedding
