"""What a media file is, from its first bytes and its header alone: no decoding, no numpy.

The gateway reads this much of an upload to accept it and charge its seconds; the stages open files through
`open_media` too, so both tell an empty file, a file that is not media and a damaged one apart the same way.
Every way a file can be unusable ends in a `MediaError` whose `code` the services put in
`AnalysisFailed.code` (and the gateway in its 422 answers).
"""

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Final

import av
import av.container
import av.error

from emotion_contract.errors import FailureCode

# Demuxers that open a single picture or a text file as if it were a one-stream video.
_STILL_FORMATS: Final = frozenset({"image2", "tty", "gif"})
# Enough of a file's start for every signature below (an MPEG transport stream's second sync byte is at 188).
SNIFF_BYTES: Final = 512
OPEN_TIMEOUT_S: Final = 20.0
DECODER_SLACK_S: Final = 1.0
"""Decoders add a few frames of their own (AAC's priming and last-frame padding: 20 ms on a 2 s file)."""


# What a file may declare before anything of it is decoded: a header asking for a 16k picture, a thousand
# frames a second or a hundred tracks would cost memory or time out of all proportion to what it holds.
MAX_STREAMS: Final = 16
MAX_PIXELS: Final = 8192 * 4608  # a little over 8K UHD
MAX_SIDE: Final = 8192
MAX_FPS: Final = 240.0
# Given to every decoder FFmpeg opens, also the ones it opens while probing a header: a frame larger than the
# limits is refused before its buffers are allocated (a 750 KB file can ask for a 16000x16000 picture, which
# took a probe from 40 MB to 630 MB, and a decode to 1.1 GB), also when the size changes mid-stream.
DECODER_OPTIONS: Final = {"max_pixels": str(MAX_PIXELS)}


class MediaError(Exception):
    """A file that cannot be analysed; `code` is stable, the message is for people."""

    def __init__(self, code: FailureCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Container(StrEnum):
    ISO_BMFF = "iso-bmff"
    WAVE = "wave"
    AVI = "avi"
    MPEG_AUDIO = "mpeg-audio"
    FLAC = "flac"
    OGG = "ogg"
    MATROSKA = "matroska"
    FLV = "flv"
    ASF = "asf"
    MPEG_PS = "mpeg-ps"
    MPEG_TS = "mpeg-ts"


# MP4, MOV, M4A, 3GP; QuickTime files from before ISO-BMFF may open with another atom than 'ftyp'.
_ISO_BMFF_ATOMS: Final = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"})
_SIGNATURES: Final = (
    (b"fLaC", Container.FLAC),
    (b"OggS", Container.OGG),
    (b"\x1a\x45\xdf\xa3", Container.MATROSKA),
    (b"FLV", Container.FLV),
    (b"\x30\x26\xb2\x75", Container.ASF),
    (b"\x00\x00\x01\xba", Container.MPEG_PS),
)


def sniff_container(head: bytes) -> Container | None:
    """The media container the file's first bytes announce, or None when they announce none we read.

    Magic numbers of the containers people upload: tells a damaged video from a file that never was one."""
    if len(head) >= 8 and head[4:8] in _ISO_BMFF_ATOMS:
        return Container.ISO_BMFF
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return Container.WAVE
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return Container.AVI
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        # An ID3 tag, or an MPEG audio / ADTS frame: eleven sync bits set (0xFFE).
        return Container.MPEG_AUDIO
    for signature, container in _SIGNATURES:
        if head.startswith(signature):
            return container
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return Container.MPEG_TS
    return None


def check_declared_limits(container: av.container.InputContainer) -> None:
    """Refuse a file whose header declares more tracks, pixels or frames a second than the limits."""
    if len(container.streams) > MAX_STREAMS:
        raise MediaError(
            FailureCode.MEDIA_OVER_LIMITS,
            f"the file has {len(container.streams)} tracks; at most {MAX_STREAMS}",
        )
    for stream in container.streams.video:
        if stream.disposition & av.stream.Disposition.attached_pic:
            continue  # cover art: one picture, whatever rate its header claims
        width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
        if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
            raise MediaError(
                FailureCode.MEDIA_OVER_LIMITS, f"the video is {width}x{height}; at most {MAX_SIDE} a side, 8K"
            )
        rate = stream.average_rate or stream.guessed_rate
        if rate is not None and float(rate) > MAX_FPS:
            raise MediaError(
                FailureCode.MEDIA_OVER_LIMITS,
                f"the video has {float(rate):.0f} frames a second; at most {MAX_FPS:.0f}",
            )


@contextmanager
def open_media(path: Path) -> Iterator[av.container.InputContainer]:
    """The file opened for reading, its header checked against the limits. Raises MediaError."""
    path = Path(path)
    size = path.stat().st_size  # a missing file is the caller's bug: FileNotFoundError, not a MediaError
    if size == 0:
        raise MediaError(FailureCode.EMPTY_FILE, "the file is empty (0 bytes)")
    try:
        container = av.open(str(path), mode="r", options=DECODER_OPTIONS)
    except av.error.FFmpegError as error:
        with path.open("rb") as file:
            head = file.read(SNIFF_BYTES)
        if sniff_container(head) is not None:
            raise MediaError(
                FailureCode.CORRUPT_MEDIA,
                f"the file looks like media but cannot be read ({error.strerror})",
            ) from error
        raise MediaError(FailureCode.NOT_MEDIA, "the file is not a video or audio file") from error
    try:
        if container.format.name in _STILL_FORMATS or container.format.name.endswith("_pipe"):
            raise MediaError(
                FailureCode.NOT_MEDIA,
                f"the file is a picture or text ({container.format.name}), not a video",
            )
        check_declared_limits(container)
        yield container
    finally:
        container.close()


def video_stream(container: av.container.InputContainer) -> av.VideoStream | None:
    """The first real video stream (cover art inside an audio file does not make it a video), its decoder
    bound to the picture limits."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            stream.codec_context.options = {**stream.codec_context.options, **DECODER_OPTIONS}
            return stream
    return None


def audio_stream(container: av.container.InputContainer) -> av.AudioStream | None:
    return container.streams.audio[0] if container.streams.audio else None


def declared_duration_s(container: av.container.InputContainer) -> float | None:
    """What the header says the file lasts: the container's length, else its longest track's."""
    if container.duration is not None and container.duration > 0:
        return float(container.duration / av.time_base)
    durations = [
        float(stream.duration * stream.time_base)
        for stream in (*container.streams.video, *container.streams.audio)
        if stream.duration is not None and stream.time_base is not None
    ]
    return max(durations) if durations and max(durations) > 0 else None


def read_declared_duration(source: str, *, timeout_s: float = OPEN_TIMEOUT_S) -> float:
    """Seconds the media at `source` (a path or a URL) declares, from its header alone, once the header is
    within the limits (`check_declared_limits`). Raises MediaError.

    Over a presigned URL FFmpeg fetches only the byte ranges it needs: a few small reads. FFmpeg may decode
    a frame or two to learn a stream's format: run this where memory is bounded (the gateway runs it in a
    child process, `services.gateway.media_probe`)."""
    try:
        # One decoding thread: a header needs no more, and each thread reserves address space.
        container = av.open(source, mode="r", timeout=timeout_s, options={**DECODER_OPTIONS, "threads": "1"})
    except (av.error.FFmpegError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        if getattr(exc, "errno", None) == errno.ENOMEM:
            raise MediaError(
                FailureCode.MEDIA_OVER_LIMITS, f"reading the file's header needs more memory ({reason})"
            ) from exc
        raise MediaError(
            FailureCode.CORRUPT_MEDIA, f"the file looks like media but cannot be read ({reason})"
        ) from exc
    try:
        if not container.streams.video and not container.streams.audio:
            raise MediaError(FailureCode.NOT_MEDIA, "the file has neither a video nor an audio track")
        check_declared_limits(container)
        declared = declared_duration_s(container)
        if declared is None:
            raise MediaError(FailureCode.CORRUPT_MEDIA, "the file does not say how long it is")
        return declared
    finally:
        container.close()


def check_length(duration_s: float, max_duration_s: float | None) -> None:
    if max_duration_s is not None and duration_s > max_duration_s:
        raise MediaError(
            FailureCode.TOO_LONG,
            f"the file lasts {duration_s:.1f} s, more than the {max_duration_s:.0f} s allowed",
        )
