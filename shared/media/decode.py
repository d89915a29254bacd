"""Reading a whole media file: every packet checked (`probe`), the audio as samples (`load_audio`)."""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import av
import av.error
import numpy as np
import numpy.typing as npt

from emotion_contract.errors import FailureCode
from emotion_contract.events import MediaInfo
from shared.media.container import (
    DECODER_SLACK_S,
    MediaError,
    audio_stream,
    check_length,
    declared_duration_s,
    open_media,
    video_stream,
)

logger = logging.getLogger(__name__)

# An index may count a packet or two more than the file holds (edit lists, encoder priming).
_MISSING_PACKETS_TOLERATED: Final = 2
_MISSING_SECONDS_TOLERATED: Final = 1.0
# Raw audio streams whose header duration may be guessed from the first frame's bitrate (a VBR MP3 without
# a Xing header): a shortfall there is no sign of damage.
_GUESSED_DURATION_FORMATS: Final = frozenset({"mp3", "aac"})


@dataclass
class _StreamTally:
    """What demuxing found of one stream, against what its header promised."""

    stream: av.video.stream.VideoStream | av.audio.stream.AudioStream
    packets: int = 0
    end_s: float = 0.0
    decoded: bool = False

    def declared_s(self) -> float | None:
        """The stream's own declared length (MP4 and MOV give one per track; Matroska often none)."""
        if self.stream.duration is None or self.stream.time_base is None:
            return None
        return float(self.stream.duration * self.stream.time_base)

    def check_complete(self, trust_durations: bool) -> None:
        """Streams of different lengths are normal (a recording whose sound stops before its picture): each
        stream is held to its own declared length, never to the container's."""
        promised = self.stream.frames
        if promised and self.packets + _MISSING_PACKETS_TOLERATED < promised:
            raise MediaError(
                FailureCode.CORRUPT_MEDIA,
                f"the file is cut short: {self.stream.type} has {self.packets} of {promised} packets",
            )
        declared_s = self.declared_s() if trust_durations else None
        if _falls_short(self.end_s, declared_s):
            raise MediaError(
                FailureCode.CORRUPT_MEDIA,
                f"the file is cut short: its {self.stream.type} track stops at {self.end_s:.1f} s"
                f" of {declared_s:.1f} s",
            )
        if self.packets and not self.decoded:
            raise MediaError(FailureCode.CORRUPT_MEDIA, f"the {self.stream.type} track cannot be decoded")


def _falls_short(end_s: float, declared_s: float | None) -> bool:
    return declared_s is not None and end_s < declared_s * 0.9 - _MISSING_SECONDS_TOLERATED


def probe(path: Path, *, max_duration_s: float | None = None) -> MediaInfo:
    """Reads every packet (no full decode) and the first frame of each track: a truncated or undecodable
    file fails here, before any model runs. Raises MediaError."""
    with open_media(path) as container:
        declared_s = declared_duration_s(container)
        if declared_s is not None:
            check_length(declared_s, max_duration_s)
        video, audio = video_stream(container), audio_stream(container)
        tallies = {stream.index: _StreamTally(stream) for stream in (video, audio) if stream is not None}
        if not tallies:
            raise MediaError(FailureCode.NOT_MEDIA, "the file has neither a video nor an audio track")
        start_s = (container.start_time or 0) / av.time_base
        try:
            for packet in container.demux([tally.stream for tally in tallies.values()]):
                tally = tallies[packet.stream.index]
                if packet.size == 0:
                    continue
                tally.packets += 1
                if packet.pts is not None and packet.time_base is not None:
                    end = (packet.pts + (packet.duration or 0)) * packet.time_base - start_s
                    tally.end_s = max(tally.end_s, float(end))
                if not tally.decoded:
                    tally.decoded = bool(packet.decode())
            for tally in tallies.values():
                if tally.packets and not tally.decoded:
                    tally.decoded = bool(tally.stream.codec_context.decode(None))
        except av.error.FFmpegError as error:
            raise MediaError(FailureCode.CORRUPT_MEDIA, f"the file is damaged ({error.strerror})") from error
        trusted = container.format.name not in _GUESSED_DURATION_FORMATS
        for tally in tallies.values():
            tally.check_complete(trusted)
        duration_s = max(tally.end_s for tally in tallies.values())
        # The container's length is the longest stream's: the file as a whole must reach it.
        if trusted and _falls_short(duration_s, declared_s):
            raise MediaError(
                FailureCode.CORRUPT_MEDIA,
                f"the file is cut short: it stops at {duration_s:.1f} s of {declared_s:.1f} s",
            )
        check_length(duration_s, max_duration_s)
        return MediaInfo(
            duration_s=duration_s,
            has_video=video is not None,
            has_audio=audio is not None,
            width=video.codec_context.width if video else None,
            height=video.codec_context.height if video else None,
            fps=float(video.average_rate) if video and video.average_rate else None,
        )


def load_audio(
    path: Path, sample_rate: int = 16_000, *, max_duration_s: float | None = None
) -> npt.NDArray[np.float32]:
    """The first audio track as float32 mono samples in [-1, 1] at `sample_rate`. Raises MediaError."""
    with open_media(path) as container:
        stream = audio_stream(container)
        if stream is None:
            raise MediaError(FailureCode.NO_AUDIO_TRACK, "the file has no audio track")
        # Decoders add a few frames of their own, so the samples of a file `probe` accepts at the limit run a
        # little past it.
        max_samples = (
            None if max_duration_s is None else int((max_duration_s + DECODER_SLACK_S) * sample_rate)
        )
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[npt.NDArray[np.float32]] = []
        total = 0
        try:
            for frame in container.decode(stream):
                for resampled in resampler.resample(frame):
                    chunk = np.asarray(resampled.to_ndarray(), dtype=np.float32).reshape(-1)
                    chunks.append(chunk)
                    total += len(chunk)
                # A header can lie about the length; the samples cannot.
                if max_samples is not None and total > max_samples:
                    check_length(total / sample_rate, max_duration_s)
            chunks.extend(
                np.asarray(resampled.to_ndarray(), dtype=np.float32).reshape(-1)
                for resampled in resampler.resample(None)
            )
        except av.error.FFmpegError as error:
            raise MediaError(
                FailureCode.CORRUPT_MEDIA, f"the audio cannot be decoded ({error.strerror})"
            ) from error
    if not chunks:
        raise MediaError(FailureCode.CORRUPT_MEDIA, "the audio track holds no samples")
    samples = np.concatenate(chunks).astype(np.float32, copy=False)
    return np.clip(samples, -1.0, 1.0, out=samples)
