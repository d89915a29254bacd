"""Makes real test media with espeak-ng and ffmpeg, so tests know exactly what a file holds.

Every function writes into a directory the caller owns (a pytest tmp dir) and returns the path.
The speech clip's phrases and their times are known to the sample, which lets transcription tests
check words and utterance boundaries against ground truth instead of against a previous run.
"""

import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

FIRST_PHRASE: Final = "the quick brown fox jumps over the lazy dog"
SECOND_PHRASE: Final = "hello world this is a test"
GAP_S: Final = 1.5
LEAD_S: Final = 0.5
TAIL_S: Final = 0.5

# espeak-ng's samples are 16-bit; anything quieter than this is its own padding, not speech.
_SILENCE_LEVEL: Final = 300
# The ramp video's luma grows this much per second, so a frame's brightness tells its timestamp.
RAMP_LUMA_PER_S: Final = 30.0
VIDEO_SIZE: Final = (320, 240)
VIDEO_FPS: Final = 25


@dataclass(frozen=True)
class SpeechClip:
    path: Path
    phrases: tuple[str, ...]
    spans: tuple[tuple[float, float], ...]
    """(start, end) in seconds of each phrase in the file, measured from the samples."""
    duration_s: float


def require_tools() -> None:
    """Fails with the install command, instead of a FileNotFoundError deep in a fixture."""
    missing = [tool for tool in ("ffmpeg", "espeak-ng") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)}: apt-get install -y ffmpeg espeak-ng")


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def _ffmpeg(*args: str) -> None:
    _run("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args)


def _speak(text: str, dest: Path) -> tuple[npt.NDArray[np.int16], int]:
    _run("espeak-ng", "-w", str(dest), text)
    with wave.open(str(dest), "rb") as reader:
        rate = reader.getframerate()
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > _SILENCE_LEVEL)
    return samples[loud[0] : loud[-1] + 1], rate


def _write_wav(samples: npt.NDArray[np.int16], rate: int, dest: Path) -> None:
    with wave.open(str(dest), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.astype("<i2").tobytes())


def speech_wav(directory: Path) -> SpeechClip:
    """Two spoken phrases separated by GAP_S of silence, with LEAD_S before and TAIL_S after."""
    require_tools()
    first, rate = _speak(FIRST_PHRASE, directory / "first.wav")
    second, second_rate = _speak(SECOND_PHRASE, directory / "second.wav")
    assert rate == second_rate

    def silence(seconds: float) -> npt.NDArray[np.int16]:
        return np.zeros(round(seconds * rate), dtype=np.int16)

    parts = [silence(LEAD_S), first, silence(GAP_S), second, silence(TAIL_S)]
    first_start = LEAD_S
    first_end = first_start + len(first) / rate
    second_start = first_end + len(parts[2]) / rate
    second_end = second_start + len(second) / rate
    path = directory / "speech.wav"
    samples = np.concatenate(parts)
    _write_wav(samples, rate, path)
    return SpeechClip(
        path=path,
        phrases=(FIRST_PHRASE, SECOND_PHRASE),
        spans=((first_start, first_end), (second_start, second_end)),
        duration_s=len(samples) / rate,
    )


def encode_audio(source: Path, dest: Path) -> Path:
    """Re-encodes audio into the format dest's suffix names: .mp3, .m4a, .flac, .ogg, .wav."""
    codecs = {".mp3": "libmp3lame", ".m4a": "aac", ".flac": "flac", ".ogg": "libvorbis", ".wav": "pcm_s16le"}
    _ffmpeg("-i", str(source), "-c:a", codecs[dest.suffix], str(dest))
    return dest


def _ramp_video_source(duration_s: float) -> list[str]:
    width, height = VIDEO_SIZE
    luma = f"min(235,16+{RAMP_LUMA_PER_S}*T)"
    graph = (
        f"color=c=black:s={width}x{height}:r={VIDEO_FPS}:d={duration_s:.3f},"
        f"format=yuv420p,geq=lum='{luma}':cb=128:cr=128"
    )
    return ["-f", "lavfi", "-i", graph]


def ramp_brightness(t: float) -> float:
    """The RGB grey level of the ramp video at time t (limited-range luma mapped to 0-255)."""
    luma = min(235.0, 16.0 + RAMP_LUMA_PER_S * t)
    return (luma - 16.0) * 255.0 / 219.0


def video_with_audio(audio: Path, dest: Path, duration_s: float) -> Path:
    """An H.264/AAC mp4 whose grey picture brightens with time (see `ramp_brightness`) over the audio."""
    _ffmpeg(
        *_ramp_video_source(duration_s),
        "-i", str(audio),
        "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-shortest",
        str(dest),
    )  # fmt: skip
    return dest


def streams_of_different_lengths(audio: Path, dest: Path, video_s: float) -> Path:
    """The ramp video of `video_s` seconds with `audio` of its own length (no -shortest): the picture goes on
    after the sound stops, or stops before it; .mp4 (per-track lengths) or .mkv (often none)."""
    _ffmpeg(
        *_ramp_video_source(video_s),
        "-i", str(audio),
        "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac",
        str(dest),
    )  # fmt: skip
    return dest


def video_without_audio(dest: Path, duration_s: float = 3.0) -> Path:
    _ffmpeg(
        *_ramp_video_source(duration_s),
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        str(dest),
    )  # fmt: skip
    return dest


def picture_only(source: Path, dest: Path) -> Path:
    """`source` with its sound removed (the picture copied as it is)."""
    _ffmpeg("-i", str(source), "-an", "-c:v", "copy", str(dest))
    return dest


def video_with_noise(dest: Path, duration_s: float = 4.0) -> Path:
    """A video whose sound is quiet pink noise: a soundtrack with no speech in it."""
    _ffmpeg(
        *_ramp_video_source(duration_s),
        "-f", "lavfi", "-i", f"anoisesrc=color=pink:amplitude=0.02:sample_rate=44100:d={duration_s:.3f}",
        "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
        str(dest),
    )  # fmt: skip
    return dest


def bars_video(dest: Path, duration_s: float = 1.0) -> Path:
    """A 320×240 blue picture with 40-pixel red bars at the left and right edges: a centred square crop
    sees blue only."""
    width, height = VIDEO_SIZE
    bar = (width - height) // 2
    graph = (
        f"color=c=blue:s={width}x{height}:r={VIDEO_FPS}:d={duration_s:.3f},"
        f"drawbox=x=0:y=0:w={bar}:h={height}:color=red:t=fill,"
        f"drawbox=x={width - bar}:y=0:w={bar}:h={height}:color=red:t=fill"
    )
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        graph,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv444p",
        str(dest),
    )
    return dest


def audio_with_cover_art(audio: Path, picture: Path, dest: Path) -> Path:
    """An audio file carrying a picture as an attached "video" stream, as music and podcast files do."""
    _ffmpeg(
        "-i", str(audio), "-i", str(picture), "-map", "0", "-map", "1", "-c", "copy",
        "-disposition:v:0", "attached_pic", str(dest),
    )  # fmt: skip
    return dest


def faststart_copy(source: Path, dest: Path) -> Path:
    """The same mp4 with its index (moov) moved before the media data, as web uploads usually are."""
    _ffmpeg("-i", str(source), "-c", "copy", "-movflags", "+faststart", str(dest))
    return dest


def truncated_copy(source: Path, dest: Path, keep_fraction: float = 0.5) -> Path:
    """The first part of a real file, as an interrupted upload leaves it."""
    data = source.read_bytes()
    dest.write_bytes(data[: int(len(data) * keep_fraction)])
    return dest


def random_bytes(dest: Path, size: int = 64 * 1024, seed: int = 7) -> Path:
    dest.write_bytes(np.random.default_rng(seed).bytes(size))
    return dest


def empty_file(dest: Path) -> Path:
    dest.write_bytes(b"")
    return dest


def image_file(dest: Path) -> Path:
    """A still picture (.png or .jpg by dest's suffix): ffmpeg can open it, but it is not a video."""
    _ffmpeg("-f", "lavfi", "-i", "testsrc=s=160x120", "-frames:v", "1", str(dest))
    return dest


@dataclass(frozen=True)
class MediaSet:
    """One of each kind of upload the media code must tell apart."""

    speech: SpeechClip
    speech_mp4: Path
    speech_mp3: Path
    speech_m4a: Path
    speech_flac: Path
    speech_mp3_with_cover: Path
    video_no_audio: Path
    video_noise: Path
    bars: Path
    truncated: Path
    truncated_faststart: Path
    random: Path
    empty: Path
    png: Path
    jpeg: Path
    text: Path


def make_media_set(directory: Path) -> MediaSet:
    """Every file of `MediaSet` in `directory` (about 3 s of ffmpeg and espeak-ng work)."""
    speech = speech_wav(directory)
    speech_mp4 = video_with_audio(speech.path, directory / "speech.mp4", speech.duration_s)
    text = directory / "notes.txt"
    text.write_text("not a video\n" * 50)
    speech_mp3 = encode_audio(speech.path, directory / "speech.mp3")
    png = image_file(directory / "picture.png")
    return MediaSet(
        speech=speech,
        speech_mp4=speech_mp4,
        speech_mp3=speech_mp3,
        speech_mp3_with_cover=audio_with_cover_art(speech_mp3, png, directory / "speech-cover.mp3"),
        speech_m4a=encode_audio(speech.path, directory / "speech.m4a"),
        speech_flac=encode_audio(speech.path, directory / "speech.flac"),
        video_no_audio=video_without_audio(directory / "no_audio.mp4"),
        video_noise=video_with_noise(directory / "noise.mp4"),
        bars=bars_video(directory / "bars.mp4"),
        truncated=truncated_copy(speech_mp4, directory / "truncated.mp4"),
        truncated_faststart=truncated_copy(
            faststart_copy(speech_mp4, directory / "faststart.mp4"), directory / "truncated_faststart.mp4"
        ),
        random=random_bytes(directory / "random.mp4"),
        empty=empty_file(directory / "empty.mp4"),
        png=png,
        jpeg=image_file(directory / "picture.jpg"),
        text=text,
    )
