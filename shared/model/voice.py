"""The voice: Whisper-base encoder states, mean and standard deviation pooled over each utterance's frames
(1,024 numbers), and a small head → MELD's seven emotions (`training.voice` trains it).

Whisper's encoder is the transcriber's own model (CTranslate2, int8 on a CPU). The file is encoded once,
in consecutive 30 s windows as Whisper was trained (the last one zero-padded), ~0.6 s per window on 2
cores; each utterance pools the states of its span widened on each side by each of the head's margins.
Measured on six RAVDESS actors (leave-one-actor-out logistic regression): states of a span encoded alone,
at its own length (which CTranslate2 accepts), scored weighted F1 0.537; the same span's frames out of a
padded 30 s window 0.617; the whole clip's frames, ~0.7 s of silence around the words included, 0.658.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Final, cast

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from shared.transcription import load_whisper

WHISPER_DIM: Final = 512  # base
POOLED_DIM: Final = 2 * WHISPER_DIM
MAX_FRAMES: Final = 3000  # Whisper's window: 30 s of 10 ms mel frames
VOICE_ENCODER: Final = "whisper-base-encoder"
WINDOW_SAMPLES: Final = 30 * 16_000
SAMPLES_PER_STATE: Final = 320  # 20 ms
MARGINS_S: Final = (0.0, 0.25, 0.75)
HIDDEN: Final = 0  # 0: multinomial logistic regression; > 0: MEMBERS two-layer heads of that width
MEMBERS: Final = 1


class WhisperStates:
    """Whisper's encoder alone: samples → (frames / 2, 512) states."""

    def __init__(self, model_dir: Path, device: str = "cpu", cpu_threads: int = 0) -> None:
        self._model = load_whisper(model_dir, device=device, cpu_threads=cpu_threads)

    def window_states(self, samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(ceil(len / 320), 512): the states of the whole audio, in 30 s windows padded as Whisper's."""
        samples = np.asarray(samples, dtype=np.float32)
        # Filled in place: a list of windows concatenated at the end would hold the states twice (2.2 GB
        # at once for a 3-hour file).
        out = np.empty((state_frames(len(samples)), WHISPER_DIM), dtype=np.float32)
        filled = 0
        for first in range(0, max(len(samples), 1), WINDOW_SAMPLES):
            chunk = samples[first : first + WINDOW_SAMPLES]
            padded = np.pad(chunk, (0, WINDOW_SAMPLES - len(chunk)))
            features = np.ascontiguousarray(self._model.feature_extractor(padded)[:, :MAX_FRAMES])
            states = np.asarray(self._model.encode(features))[0]  # (1500, 512)
            kept = states[: state_frames(len(chunk))]
            out[filled : filled + len(kept)] = kept
            filled += len(kept)
        return out


def state_frames(n_samples: int) -> int:
    """How many 20 ms states `WhisperStates.window_states` gives for that many 16 kHz samples."""
    return max(1, -(-n_samples // SAMPLES_PER_STATE))


def states_nbytes(n_samples: int) -> int:
    """The memory the whole file's states take, known before computing them."""
    return state_frames(n_samples) * WHISPER_DIM * np.dtype(np.float32).itemsize


def span_states(
    states: npt.NDArray[np.float32], start: float, end: float, margin_s: float
) -> npt.NDArray[np.float32]:
    """The states of [start − margin, end + margin) seconds (at least one frame)."""
    per_second = 16_000 / SAMPLES_PER_STATE
    first = min(max(0, int((start - margin_s) * per_second)), len(states) - 1)
    last = max(first + 1, min(len(states), int(np.ceil((end + margin_s) * per_second))))
    return states[first:last]


def pool_states(states: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(frames, 512) → (1024,): mean and standard deviation over time."""
    return np.concatenate([states.mean(axis=0), states.std(axis=0)]).astype(np.float32)


def pool_span(
    states: npt.NDArray[np.float32], start: float, end: float, margins_s: Sequence[float]
) -> npt.NDArray[np.float32]:
    """(len(margins_s), 1024): the span's states pooled at each widening."""
    return np.stack([pool_states(span_states(states, start, end, margin)) for margin in margins_s])


class VoiceHead(nn.Module):
    """Pooled states → emotion logits; the temperature is fitted on held-out speakers.

    Each utterance is pooled at several widenings of its span (MARGINS_S, concatenated): the words alone
    and the breath around them. The shipped head (`hidden` 0) is a multinomial logistic regression on the
    pooled states standardised with the training set's mean and scale: in `training.voice`'s folds by
    speaker it beat `members` two-layer heads (`hidden` > 0, averaged in log space), 0.734 against 0.714-0.722
    weighted F1 on RAVDESS, and it is a tenth of their size.
    """

    def __init__(
        self,
        hidden: int = HIDDEN,
        classes: int = 7,
        dropout: float = 0.3,
        margins: tuple[float, ...] = MARGINS_S,
        members: int = MEMBERS,
    ) -> None:
        super().__init__()
        dim = POOLED_DIM * len(margins)
        if hidden == 0:
            self.nets = nn.ModuleList([nn.Linear(dim, classes)])
        else:
            self.nets = nn.ModuleList(
                nn.Sequential(
                    nn.LayerNorm(dim),
                    nn.Dropout(0.1),
                    nn.Linear(dim, hidden),
                    nn.GELU(),
                    nn.Dropout(dropout),
                    nn.Linear(hidden, classes),
                )
                for _ in range(members)
            )
        # Standardisation of the input, fitted on the training set (identity for the two-layer heads).
        self.register_buffer("input_mean", torch.zeros(dim))
        self.register_buffer("input_scale", torch.ones(dim))
        self.register_buffer("temperature", torch.ones(()))
        # The widenings travel in the weights, so inference pools as training did.
        self.register_buffer("margins_s", torch.tensor(margins, dtype=torch.float32))

    @property
    def margins(self) -> list[float]:
        return [float(m) for m in cast(torch.Tensor, self.margins_s)]

    def pool(self, states: npt.NDArray[np.float32], start: float, end: float) -> npt.NDArray[np.float32]:
        """The head's input for one span of a file's states."""
        return pool_span(states, start, end, self.margins).reshape(-1)

    @torch.inference_mode()
    def span_probabilities(
        self, states: npt.NDArray[np.float32], spans: Sequence[tuple[float, float]]
    ) -> npt.NDArray[np.float32]:
        """(len(spans), 7) calibrated distributions of the spans of a file's states."""
        pooled = np.stack([self.pool(states, start, end) for start, end in spans])
        device = cast(torch.Tensor, self.input_mean).device
        probabilities: npt.NDArray[np.float32] = (
            self.probabilities(torch.from_numpy(pooled).to(device)).cpu().numpy()
        )
        return probabilities

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        standardised = (pooled - cast(torch.Tensor, self.input_mean)) / cast(torch.Tensor, self.input_scale)
        members = torch.stack([net(standardised).log_softmax(-1) for net in self.nets])
        logits: torch.Tensor = members.mean(dim=0)  # (B, 7), MELD order
        return logits

    def probabilities(self, pooled: torch.Tensor) -> torch.Tensor:
        probabilities: torch.Tensor = (self(pooled) / cast(torch.Tensor, self.temperature)).softmax(-1)
        return probabilities
