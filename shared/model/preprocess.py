"""Turning decoded media into model inputs; the same code runs in training and in the services."""

import numpy as np
import numpy.typing as npt
import torch
import torchaudio

from shared.model.config import ModelConfig


def clip_tensor(frames: npt.NDArray[np.uint8], config: ModelConfig) -> torch.Tensor:
    """(T, S, S, 3) uint8 RGB frames → (3, T, S, S) float, normalised as R3D-18 expects."""
    if frames.shape[1:] != (config.frame_size, config.frame_size, 3):
        raise ValueError(
            f"expected frames of {config.frame_size}×{config.frame_size}×3, got {frames.shape[1:]}"
        )
    clip = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(255.0)  # (T, S, S, 3)
    mean = torch.tensor(config.video_mean).view(1, 1, 1, 3)
    std = torch.tensor(config.video_std).view(1, 1, 1, 3)
    return ((clip - mean) / std).permute(3, 0, 1, 2).contiguous()  # (3, T, S, S)


def audio_segment(
    audio: npt.NDArray[np.float32], start: float, end: float, config: ModelConfig
) -> npt.NDArray[np.float32]:
    """The samples of [start, end), at most audio_max_s of them (the centre of a longer utterance)."""
    first = max(0, round(start * config.sample_rate))
    last = min(len(audio), round(end * config.sample_rate))
    segment = audio[first:last]
    limit = int(config.audio_max_s * config.sample_rate)
    if len(segment) > limit:
        offset = (len(segment) - limit) // 2
        segment = segment[offset : offset + limit]
    return segment


class LogMel:
    """16 kHz mono samples → (1, n_mels, frames) log-mel, normalised per utterance."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.transform = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
            n_mels=config.n_mels,
        )
        self.min_samples = config.n_fft

    def __call__(self, samples: npt.NDArray[np.float32]) -> torch.Tensor:
        if len(samples) < self.min_samples:
            samples = np.pad(samples, (0, self.min_samples - len(samples)))
        mel = self.transform(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)))  # (n_mels, F)
        log_mel = torch.log(mel + 1e-6)
        log_mel = (log_mel - log_mel.mean()) / log_mel.std().clamp(min=1e-5)
        return log_mel.unsqueeze(0)  # (1, n_mels, F)


def min_mel_frames(config: ModelConfig) -> int:
    """The audio CNN halves the spectrogram at each stage: fewer frames than this pool away to nothing."""
    return int(2 ** len(config.audio_channels))


def pad_batch(mels: list[torch.Tensor], min_frames: int = 1) -> torch.Tensor:
    """Right-pad (1, n_mels, F_i) spectrograms with zeros (the normalised mean) to
    (B, 1, n_mels, max(max F, min_frames)); pass min_mel_frames(config) for the audio encoder."""
    longest = max(min_frames, *(m.shape[-1] for m in mels))
    return torch.stack([torch.nn.functional.pad(m, (0, longest - m.shape[-1])) for m in mels])
