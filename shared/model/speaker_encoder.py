"""Who is speaking: a voice embedding per stretch of speech, from Resemblyzer's pretrained GE2E encoder.

Resemblyzer (PyPI, Apache-2.0) ships the weights of a three-layer LSTM trained with the generalized end-to-end
loss on thousands of speakers (`pretrained.pt` inside its wheel, installed without its dependencies). Its
own preprocessing pulls in librosa, numba and webrtcvad for two small steps, so the same steps are done here
with torch: a 40-band mel power spectrogram (25 ms Hann windows every 10 ms, Slaney mel scale and norm, as
librosa computes it) of audio raised to -30 dBFS, cut into 1.6 s partials at 1.3 a second; the embedding
is the L2-normed mean of the partials' embeddings. Long silences are not trimmed: the spans embedded are
the transcriber's speech segments already.
"""

import importlib.util
from functools import cache
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import torch
import torchaudio
from torch import nn

SAMPLE_RATE: Final = 16_000
N_FFT: Final = 400  # 25 ms
HOP: Final = 160  # 10 ms
N_MELS: Final = 40
PARTIAL_FRAMES: Final = 160  # 1.6 s
PARTIALS_PER_S: Final = 1.3
MIN_COVERAGE: Final = 0.75
TARGET_DBFS: Final = -30.0
EMBEDDING_DIM: Final = 256


class SpeakerEncoder(nn.Module):
    """Resemblyzer's voice encoder: mel frames (B, T, 40) → L2-normed embeddings (B, 256), all ≥ 0."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, EMBEDDING_DIM)
        self.relu = nn.ReLU()

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        raw: torch.Tensor = self.relu(self.linear(hidden[-1]))
        normed: torch.Tensor = raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return normed


def resemblyzer_weights() -> Path:
    """`pretrained.pt` of the installed `resemblyzer` wheel, found without importing the package (its
    `__init__` imports librosa and webrtcvad, which are not installed)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the resemblyzer wheel is not installed (scripts/setup.sh installs it)")
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the resemblyzer wheel")
    return path


def load_speaker_encoder(path: Path | None = None) -> SpeakerEncoder:
    encoder = SpeakerEncoder()
    checkpoint = torch.load(path or resemblyzer_weights(), map_location="cpu", weights_only=True)
    # The checkpoint also holds the GE2E loss's similarity scale and bias, which embedding does not use.
    state = {k: v for k, v in checkpoint["model_state"].items() if not k.startswith("similarity")}
    encoder.load_state_dict(state)
    return encoder.eval()


@cache
def _mel_basis() -> torch.Tensor:
    """(201, 40): librosa's default mel filters (Slaney scale, Slaney area norm), 0-8 kHz."""
    basis: torch.Tensor = torchaudio.functional.melscale_fbanks(
        N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, N_MELS, SAMPLE_RATE, norm="slaney", mel_scale="slaney"
    )
    return basis


def mel_frames(wav: npt.NDArray[np.float32]) -> torch.Tensor:
    """(T, 40) mel power frames of 16 kHz audio, centred windows as librosa computes them."""
    spectrum = torch.stft(
        torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)),
        N_FFT,
        HOP,
        window=torch.hann_window(N_FFT),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    power = spectrum.abs() ** 2  # (201, T)
    return (power.T @ _mel_basis()).float()


def louder(wav: npt.NDArray[np.float32], target_dbfs: float = TARGET_DBFS) -> npt.NDArray[np.float32]:
    """The audio raised (never lowered) to `target_dbfs`, as the encoder was trained on."""
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))
    if rms <= 0:
        return wav
    change = target_dbfs - 20 * np.log10(rms)
    return wav if change <= 0 else (wav * 10 ** (change / 20)).astype(np.float32)


def partial_starts(n_samples: int) -> list[int]:
    """Frame indices where the 1.6 s partials of an utterance of `n_samples` start (Resemblyzer's slicing:
    at least one; the last kept when it covers ≥ 75 % of a partial)."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round((SAMPLE_RATE / PARTIALS_PER_S) / HOP))
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    coverage = (n_samples - starts[-1] * HOP) / (PARTIAL_FRAMES * HOP)
    if coverage < MIN_COVERAGE and len(starts) > 1:
        starts = starts[:-1]
    return starts


def partial_embeddings(
    encoder: SpeakerEncoder, wav: npt.NDArray[np.float32]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """(k, 256) embeddings of the 1.6 s partials of one stretch of speech, and the second at which each
    starts in it. Their normed mean is the stretch's embedding (`embed_speech`); apart, they show where in
    the stretch the voice changes."""
    if len(wav) == 0:
        raise ValueError("nothing to embed: no samples")
    starts = partial_starts(len(wav))
    needed = (starts[-1] + PARTIAL_FRAMES) * HOP
    padded = np.pad(louder(wav), (0, max(0, needed - len(wav))))
    frames = mel_frames(padded)
    partials = torch.stack([frames[s : s + PARTIAL_FRAMES] for s in starts])
    with torch.inference_mode():
        embeddings: npt.NDArray[np.float32] = encoder(partials).numpy()
    return embeddings, np.asarray(starts, dtype=np.float64) * HOP / SAMPLE_RATE


def normed_mean(embeddings: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    mean = embeddings.mean(axis=0)
    return np.asarray(mean / np.linalg.norm(mean), dtype=np.float32)


def embed_speech(encoder: SpeakerEncoder, wav: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(256,) embedding of one stretch of one person's speech (16 kHz mono float32)."""
    return normed_mean(partial_embeddings(encoder, wav)[0])
