"""Text encoder: a BERT-family transformer, mean-pooled over tokens, projected to the shared embedding."""

from collections.abc import Sequence

import torch
from torch import nn

from shared.model.config import ModelConfig
from shared.model.context import WindowInput
from shared.model.dialogue import DialogueContext


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # (B, H)


def pad_windows(
    inputs: Sequence[WindowInput], pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, L) token ids, attention mask and pool mask, right-padded to the longest input."""
    longest = max(len(i.input_ids) for i in inputs)
    ids = torch.full((len(inputs), longest), pad_token_id, dtype=torch.long)
    attention = torch.zeros((len(inputs), longest), dtype=torch.long)
    pool = torch.zeros((len(inputs), longest), dtype=torch.long)
    for row, item in enumerate(inputs):
        n = len(item.input_ids)
        ids[row, :n] = torch.tensor(item.input_ids, dtype=torch.long)
        attention[row, :n] = 1
        pool[row, :n] = torch.tensor(item.pool_mask, dtype=torch.long)
    return ids, attention, pool


class TextProjection(nn.Module):
    """What the bundle's text component trains on top of the (frozen or fine-tuned) backbone: the projection
    of each utterance, and the conversation model over a file's projections when the config has one."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(config.text_hidden, config.embed_dim), nn.ReLU())
        self.dialogue = (
            DialogueContext(
                config.embed_dim, config.text_dialogue_hidden, config.dropout, config.text_dialogue_speakers
            )
            if config.text_dialogue_hidden
            else None
        )

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        embedding: torch.Tensor = self.proj(pooled)  # (B, 128)
        return embedding


class TextEncoder(nn.Module):
    def __init__(self, backbone: nn.Module, config: ModelConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection = TextProjection(config)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pool_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`pool_mask` (B, L): the tokens to average (an utterance's own inside its context window,
        shared.model.context); None averages every attended token."""
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask
        ).last_hidden_state  # (B, L, H)
        pooled = mean_pool(hidden, attention_mask if pool_mask is None else pool_mask)  # (B, H)
        embedding: torch.Tensor = self.projection(pooled)  # (B, 128)
        return embedding
