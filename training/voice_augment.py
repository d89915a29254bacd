"""What uploads do to a voice, applied to clean corpus speech: lossy codecs, noise and gain, speed (tempo and
pitch together, as a resampled recording), and a telephone band. Each is seeded per clip, so a feature
cache rebuilt from the same clips holds the same variants.
"""

import subprocess
from collections.abc import Callable
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.signal import resample_poly  # type: ignore[import-untyped]

from shared.transcription import SAMPLE_RATE

Samples = npt.NDArray[np.float32]
# (encoder, bitrate): what phones, conferencing tools and web uploads use, at their lower rates.
CODECS: Final = (("libopus", "16k"), ("libmp3lame", "32k"), ("aac", "32k"), ("libopus", "24k"))


def codec_round_trip(samples: Samples, codec: str, bitrate: str) -> Samples:
    """Encode with ffmpeg and decode back to 16 kHz mono float32 (same length, trimmed or padded)."""
    container = {"libopus": "ogg", "libmp3lame": "mp3", "aac": "adts"}[codec]
    raw = ["-f", "f32le", "-ar", str(SAMPLE_RATE), "-ac", "1"]
    encoded = subprocess.run(
        ["ffmpeg", "-v", "error", *raw, "-i", "-", "-c:a", codec, "-b:a", bitrate, "-f", container, "-"],
        input=np.ascontiguousarray(samples, dtype="<f4").tobytes(),
        capture_output=True,
        check=True,
    ).stdout
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", "-", *raw, "-"], input=encoded, capture_output=True, check=True
    ).stdout
    out = np.frombuffer(decoded, dtype="<f4").astype(np.float32)
    return np.pad(out, (0, max(0, len(samples) - len(out))))[: len(samples)]


def add_noise(samples: Samples, rng: np.random.Generator) -> Samples:
    """Coloured noise at 5-25 dB SNR, then a gain of -12 to +6 dB (clipped, as a recorder would)."""
    white = rng.standard_normal(len(samples)).astype(np.float32)
    # 1/f^β spectrum, β in [0, 2]: from hiss to rumble
    spectrum = np.fft.rfft(white)
    frequencies = np.maximum(np.fft.rfftfreq(len(samples)), 1.0 / len(samples))
    noise = np.fft.irfft(spectrum / frequencies ** (rng.uniform(0, 2) / 2), n=len(samples)).astype(np.float32)
    signal_power = float(np.mean(samples**2)) + 1e-10
    noise *= np.sqrt(signal_power / (float(np.mean(noise**2)) + 1e-10) / 10 ** (rng.uniform(5, 25) / 10))
    gain = 10 ** (rng.uniform(-12, 6) / 20)
    noisy: Samples = np.clip((samples + noise) * gain, -1, 1).astype(np.float32)
    return noisy


def change_speed(samples: Samples, rng: np.random.Generator) -> tuple[Samples, float]:
    """Played 0.9-1.1× as fast (pitch moves with it); returns the samples and the factor."""
    up = 100
    down = round(up * float(rng.uniform(0.9, 1.1)))
    out = resample_poly(samples, up, down).astype(np.float32)
    return out, down / up


def telephone(samples: Samples, rng: np.random.Generator) -> Samples:
    """Through 8 kHz and back (a 4 kHz band), with light noise."""
    narrow = resample_poly(resample_poly(samples, 1, 2), 2, 1).astype(np.float32)[: len(samples)]
    return add_noise(narrow, rng) if rng.random() < 0.5 else narrow


Variant = Callable[[Samples, np.random.Generator], tuple[Samples, float]]


def _same_speed(transform: Callable[[Samples, np.random.Generator], Samples]) -> Variant:
    return lambda samples, rng: (transform(samples, rng), 1.0)


def _codec(samples: Samples, rng: np.random.Generator) -> Samples:
    codec, bitrate = CODECS[int(rng.integers(len(CODECS)))]
    return codec_round_trip(samples, codec, bitrate)


VARIANTS: Final[dict[str, Variant]] = {
    "clean": _same_speed(lambda samples, _: samples),
    "codec": _same_speed(_codec),
    "noise": _same_speed(add_noise),
    "speed": change_speed,
    "telephone": _same_speed(telephone),
}
