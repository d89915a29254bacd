"""The voice: Whisper-base encoder states, mean and standard deviation pooled over each utterance's frames
(1,024 numbers), and a small head → MELD's seven emotions (`training.voice` trains it).

Whisper's encoder is the transcriber's own model (CTranslate2, int8 on a CPU), and its states are the ones
the transcription decoded (`shared.speech_pass`): the file's speech in windows of at most 30 s padded with
silence as Whisper was trained, a file that fits one window encoded whole, ~0.5 s per window on 2 cores;
each utterance pools the states of its span widened on each side by each of the head's margins.
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

from shared.speech_pass import FileStates, speech_states, state_frames
from shared.transcription import chunk_bounds, load_whisper

WHISPER_DIM: Final = 512  # base
POOLED_DIM: Final = 2 * WHISPER_DIM
VOICE_ENCODER: Final = "whisper-base-encoder"
MARGINS_S: Final = (0.0, 0.25, 0.75)
HIDDEN: Final = 0  # 0: multinomial logistic regression; > 0: MEMBERS two-layer heads of that width
MEMBERS: Final = 1


class WhisperStates:
    """Whisper's encoder alone: samples → the states of their speech (`shared.speech_pass.FileStates`), as a
    transcription of the same samples computes them."""

    def __init__(self, model_dir: Path, device: str = "cpu", cpu_threads: int = 0) -> None:
        self._model = load_whisper(model_dir, device=device, cpu_threads=cpu_threads)

    def speech_states(self, samples: npt.NDArray[np.float32]) -> FileStates:
        """The states of the speech in `samples`, each piece of it encoded once."""
        samples = np.asarray(samples, dtype=np.float32)
        return speech_states(self._model, samples, chunk_bounds(samples), WHISPER_DIM)


def states_nbytes(n_samples: int) -> int:
    """The memory a file's states take, known before computing them."""
    return state_frames(n_samples) * (WHISPER_DIM * np.dtype(np.float32).itemsize + 1)


def pool_states(states: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(frames, 512) → (1024,): mean and standard deviation over time."""
    return np.concatenate([states.mean(axis=0), states.std(axis=0)]).astype(np.float32)


def pool_span(
    states: FileStates, start: float, end: float, margins_s: Sequence[float]
) -> npt.NDArray[np.float32]:
    """(len(margins_s), 1024): the span's states pooled at each widening."""
    return np.stack([pool_states(states.span(start, end, margin)) for margin in margins_s])


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

    def pool(self, states: FileStates, start: float, end: float) -> npt.NDArray[np.float32]:
        """The head's input for one span of a file's states."""
        return pool_span(states, start, end, self.margins).reshape(-1)

    @torch.inference_mode()
    def span_probabilities(
        self, states: FileStates, spans: Sequence[tuple[float, float]]
    ) -> npt.NDArray[np.float32]:
        """(len(spans), 7) calibrated distributions of the spans of a file's states."""
        return self.pooled_probabilities(np.stack([self.pool(states, start, end) for start, end in spans]))

    @torch.inference_mode()
    def pooled_probabilities(self, pooled: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(n, 7) calibrated distributions of n inputs already pooled (`pool`)."""
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
