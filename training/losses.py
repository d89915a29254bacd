"""The training objective: class-weighted cross-entropy on both heads, and modality dropout."""

from collections.abc import Sequence

import torch
from torch import nn


def class_weights(labels: Sequence[int], n_classes: int, power: float) -> torch.Tensor:
    """(inverse frequency) ** power, scaled so that the average weight over the samples is 1."""
    counts = torch.bincount(torch.tensor(list(labels)), minlength=n_classes).double().clamp(min=1.0)
    weights = (counts.sum() / (n_classes * counts)) ** power
    return (weights * counts.sum() / (weights * counts).sum()).float()


class MultitaskLoss(nn.Module):
    def __init__(
        self,
        emotion_weights: torch.Tensor,
        sentiment_weights: torch.Tensor,
        *,
        label_smoothing: float,
        sentiment_weight: float,
    ) -> None:
        super().__init__()
        self.emotion = nn.CrossEntropyLoss(weight=emotion_weights, label_smoothing=label_smoothing)
        self.sentiment = nn.CrossEntropyLoss(weight=sentiment_weights, label_smoothing=label_smoothing)
        self.sentiment_weight = sentiment_weight

    def forward(
        self,
        emotion_logits: torch.Tensor,
        sentiment_logits: torch.Tensor,
        emotion: torch.Tensor,
        sentiment: torch.Tensor,
    ) -> torch.Tensor:
        loss: torch.Tensor = self.emotion(emotion_logits, emotion) + self.sentiment_weight * self.sentiment(
            sentiment_logits, sentiment
        )
        return loss


class ModalityDropout:
    """Hides each present modality with probability p (a sample keeps at least one it has), and shows a
    few samples nothing at all, so the fusion learns every subset the services may hand it."""

    def __init__(self, p: float, blank_rate: float) -> None:
        self.p = p
        self.blank_rate = blank_rate

    def __call__(self, present: torch.Tensor) -> torch.Tensor:
        # present: (B, 3) of 0/1
        keep = present * (torch.rand(present.shape, device=present.device) >= self.p)
        emptied = (keep.sum(dim=1) == 0) & (present.sum(dim=1) > 0)
        if emptied.any():
            rows = emptied.nonzero().flatten()
            restored = torch.multinomial(present[rows], 1).flatten()  # one of the row's modalities
            keep[rows, restored] = 1.0
        keep[torch.rand(len(present), device=present.device) < self.blank_rate] = 0.0
        return keep
