"""Facial expression: a small CNN on 48×48 grey face crops → the 7 FER classes, which map one-to-one onto
MELD's emotions (happy → joy, sad → sadness).

The architecture is `NetworkV2` of PyPI `facial_emotion_recognition` 0.3.4 (MIT, Rayyan Akhtar), rewritten
here with the same parameter names so that package's pretrained state dict loads into it unchanged; the
package itself is not imported (it needs OpenCV and facenet-pytorch, which the pipeline does not use).
"""

from collections.abc import Iterable
from typing import Final

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

FACE_SIZE: Final = 48
# The package's output order: Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral.
# Indexing its output with this gives MELD's order: anger, disgust, fear, joy, neutral, sadness, surprise.
FER_TO_MELD: Final = (0, 1, 2, 3, 6, 4, 5)


def _block(channels_in: int, channels_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ReflectionPad2d(padding=1),
        nn.Conv2d(channels_in, channels_out, kernel_size=(3, 3), stride=stride, padding=0),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    )


class FaceExpressionNet(nn.Module):
    def __init__(self, width: int = 32, classes: int = 7) -> None:
        super().__init__()
        self.conv_1 = _block(1, width, 1)
        self.conv_2 = _block(width, 2 * width, 2)
        self.conv_3 = _block(2 * width, 4 * width, 2)
        self.conv_4 = _block(4 * width, 8 * width, 2)
        self.linear = nn.Sequential(
            nn.Linear(8 * width * 6 * 6, 256), nn.ReLU(inplace=True), nn.Linear(256, classes), nn.Sigmoid()
        )

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        # faces: (B, 1, 48, 48) in [-1, 1]
        x = self.conv_4(self.conv_3(self.conv_2(self.conv_1(faces))))  # (B, 256, 6, 6)
        scores: torch.Tensor = self.linear(x.flatten(1))  # (B, 7) independent sigmoids, FER order
        return scores


def faces_tensor(crops: npt.NDArray[np.uint8]) -> torch.Tensor:
    """(B, 48, 48) uint8 grey crops → (B, 1, 48, 48) in [-1, 1], as the network was trained."""
    return torch.from_numpy(np.ascontiguousarray(crops)).float().div(255.0).sub(0.5).div(0.5).unsqueeze(1)


def fer_state_dict(package_checkpoint: dict[str, object]) -> dict[str, torch.Tensor]:
    """The network's weights from the package's checkpoint (which also holds its optimizer state)."""
    network = package_checkpoint["network"]
    if not isinstance(network, dict):
        raise ValueError("not a facial_emotion_recognition checkpoint: no 'network' state dict")
    return {str(k): v for k, v in network.items() if isinstance(v, torch.Tensor)}


def meld_distribution(scores: torch.Tensor) -> torch.Tensor:
    """(B, 7) sigmoid scores in FER order → (B, 7) probabilities in MELD order (normalised to sum to 1)."""
    reordered = scores[:, list(FER_TO_MELD)].clamp(min=1e-6)
    return reordered / reordered.sum(dim=1, keepdim=True)


FACE_SOURCE: Final = (
    "facial_emotion_recognition 0.3.4 from PyPI (MIT, Rayyan Akhtar): NetworkV2 trained on 48×48 FER faces; "
    "its 7 classes reordered to MELD's"
)


def pretrained_face_net() -> FaceExpressionNet:
    """The network with the weights the PyPI package ships."""
    from shared.assets import fer_weights_path

    checkpoint = torch.load(fer_weights_path(), map_location="cpu", weights_only=True)
    net = FaceExpressionNet()
    net.load_state_dict(fer_state_dict(checkpoint))
    return net.eval()


def sentiment_given_emotion(
    pairs: Iterable[tuple[int, int]], n_emotions: int = 7, n_sentiments: int = 3
) -> torch.Tensor:
    """P(sentiment | emotion) from labelled (emotion, sentiment) index pairs, add-one smoothed: (7, 3)."""
    counts = torch.ones(n_emotions, n_sentiments)
    for emotion, sentiment in pairs:
        counts[emotion, sentiment] += 1
    return counts / counts.sum(dim=1, keepdim=True)
