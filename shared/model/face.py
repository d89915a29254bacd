"""Facial expression: a VGG-style CNN on 48×48 grey face crops → MELD's seven emotions (FER2013's classes
reordered: happy → joy, sad → sadness), trained on the kit's FER2013 training faces (`training.face`).

Each crop is standardised on its own (zero mean, unit variance) before the network sees it: the kit's
faces had smoothing and contrast filters applied, faces cut out of video did not, and per-crop
standardisation removes most of that difference in brightness and contrast. The output is one softmax over
the seven classes, calibrated by a temperature fitted on the validation faces (a buffer of the module).
"""

from collections.abc import Iterable
from typing import Final, cast

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

FACE_SIZE: Final = 48
FACE_WIDTH: Final = 48  # channels of the first stage; 2.4 M parameters, ~3 ms per face on 2 cores


def _conv(channels_in: int, channels_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(channels_in, channels_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    ]


class FaceExpressionNet(nn.Module):
    """Four stages of two 3×3 convolutions (48 → 24 → 12 → 6 pixels), global average pooling, one linear."""

    def __init__(self, width: int = FACE_WIDTH, classes: int = 7, dropout: float = 0.3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels_in = 1
        for stage in range(4):
            channels_out = width * 2**stage
            layers += _conv(channels_in, channels_out) + _conv(channels_out, channels_out)
            layers.append(nn.MaxPool2d(2) if stage < 3 else nn.AdaptiveAvgPool2d(1))
            channels_in = channels_out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels_in, classes))
        self.register_buffer("temperature", torch.ones(()))

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        # faces: (B, 1, 48, 48), each standardised (faces_tensor)
        logits: torch.Tensor = self.classifier(self.features(faces))  # (B, 7), MELD order
        return logits

    def mirrored_logits(self, faces: torch.Tensor) -> torch.Tensor:
        """(B, 7) logits of each face and its mirror image, averaged (one batch of 2B)."""
        logits: torch.Tensor = self(torch.cat([faces, faces.flip(-1)]))
        return logits.view(2, len(faces), -1).mean(0)

    def probabilities(self, faces: torch.Tensor) -> torch.Tensor:
        """Calibrated (B, 7) distributions: the mirrored logits over the fitted temperature."""
        probabilities: torch.Tensor = (
            self.mirrored_logits(faces) / cast(torch.Tensor, self.temperature)
        ).softmax(-1)
        return probabilities


def standardise(faces: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) floats → each image at zero mean and unit variance."""
    mean = faces.mean(dim=(1, 2, 3), keepdim=True)
    std = faces.std(dim=(1, 2, 3), keepdim=True).clamp(min=1e-3)
    return (faces - mean) / std


def faces_tensor(crops: npt.NDArray[np.uint8]) -> torch.Tensor:
    """(B, 48, 48) uint8 grey crops → (B, 1, 48, 48) float, standardised per crop as in training."""
    return standardise(torch.from_numpy(np.ascontiguousarray(crops)).float().div(255.0).unsqueeze(1))


def sentiment_given_emotion(
    pairs: Iterable[tuple[int, int]], n_emotions: int = 7, n_sentiments: int = 3
) -> torch.Tensor:
    """P(sentiment | emotion) from labelled (emotion, sentiment) index pairs, add-one smoothed: (7, 3)."""
    counts = torch.ones(n_emotions, n_sentiments)
    for emotion, sentiment in pairs:
        counts[emotion, sentiment] += 1
    return counts / counts.sum(dim=1, keepdim=True)
