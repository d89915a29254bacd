"""Reading uploaded media with PyAV: what a file holds, its audio as samples, frames per utterance, faces.

Every way a file can be unusable ends in a `MediaError` whose `code` the services put in
`AnalysisFailed.code`, so a user learns whether the upload was empty, not a video, cut short or silent.
"""

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Final, NamedTuple, TypeAlias

import av
import av.container
import av.error
import numpy as np
import numpy.typing as npt

from shared.events import MediaInfo

logger = logging.getLogger(__name__)

# Demuxers that open a single picture or a text file as if it were a one-stream video.
_STILL_FORMATS: Final = frozenset({"image2", "tty", "gif"})
# An index may count a packet or two more than the file holds (edit lists, encoder priming).
_MISSING_PACKETS_TOLERATED: Final = 2
_MISSING_SECONDS_TOLERATED: Final = 1.0
# Raw audio streams whose header duration may be guessed from the first frame's bitrate (a VBR MP3 without
# a Xing header): a shortfall there is no sign of damage.
_GUESSED_DURATION_FORMATS: Final = frozenset({"mp3", "aac"})

Span: TypeAlias = tuple[float, float]
Uint8Array: TypeAlias = npt.NDArray[np.uint8]


class MediaErrorCode(StrEnum):
    EMPTY_FILE = "empty_file"
    NOT_MEDIA = "not_media"
    CORRUPT_MEDIA = "corrupt_media"
    NO_AUDIO_TRACK = "no_audio_track"
    TOO_LONG = "too_long"
    OVER_LIMITS = "media_over_limits"


# What a file may declare before anything of it is decoded: a header asking for a 16k picture, a thousand
# frames a second or a hundred tracks would cost memory or time out of all proportion to what it holds.
MAX_STREAMS: Final = 16
MAX_PIXELS: Final = 8192 * 4608  # a little over 8K UHD
MAX_SIDE: Final = 8192
MAX_FPS: Final = 240.0


class MediaError(Exception):
    """A file that cannot be analysed; `code` is stable, the message is for people."""

    def __init__(self, code: MediaErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _looks_like_media(head: bytes) -> bool:
    """Magic numbers of the containers people upload: tells a damaged video from a file that never was one."""
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):  # MP4, MOV, M4A, 3GP
        return True
    signatures = (
        b"RIFF",
        b"\x1a\x45\xdf\xa3",
        b"OggS",
        b"fLaC",
        b"ID3",
        b"FLV",
        b"\x30\x26\xb2\x75",
        b"\x00\x00\x01\xba",
    )
    if head.startswith(signatures):
        return True
    mpeg_audio_sync = len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
    transport_stream = len(head) > 188 and head[0] == 0x47 and head[188] == 0x47
    return mpeg_audio_sync or transport_stream


def check_declared_limits(container: av.container.InputContainer) -> None:
    """Refuse a file whose header declares more tracks, pixels or frames a second than the limits."""
    if len(container.streams) > MAX_STREAMS:
        raise MediaError(
            MediaErrorCode.OVER_LIMITS, f"the file has {len(container.streams)} tracks; at most {MAX_STREAMS}"
        )
    for stream in container.streams.video:
        if stream.disposition & av.stream.Disposition.attached_pic:
            continue  # cover art: one picture, whatever rate its header claims
        width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
        if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
            raise MediaError(
                MediaErrorCode.OVER_LIMITS, f"the video is {width}x{height}; at most {MAX_SIDE} a side, 8K"
            )
        rate = stream.average_rate or stream.guessed_rate
        if rate is not None and float(rate) > MAX_FPS:
            raise MediaError(
                MediaErrorCode.OVER_LIMITS,
                f"the video has {float(rate):.0f} frames a second; at most {MAX_FPS:.0f}",
            )


@contextmanager
def _open(path: Path) -> Iterator[av.container.InputContainer]:
    path = Path(path)
    size = path.stat().st_size  # a missing file is the caller's bug: FileNotFoundError, not a MediaError
    if size == 0:
        raise MediaError(MediaErrorCode.EMPTY_FILE, "the file is empty (0 bytes)")
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as error:
        with path.open("rb") as file:
            head = file.read(512)
        if _looks_like_media(head):
            raise MediaError(
                MediaErrorCode.CORRUPT_MEDIA,
                f"the file looks like media but cannot be read ({error.strerror})",
            ) from error
        raise MediaError(MediaErrorCode.NOT_MEDIA, "the file is not a video or audio file") from error
    try:
        if container.format.name in _STILL_FORMATS or container.format.name.endswith("_pipe"):
            raise MediaError(
                MediaErrorCode.NOT_MEDIA,
                f"the file is a picture or text ({container.format.name}), not a video",
            )
        check_declared_limits(container)
        yield container
    finally:
        container.close()


def _video_stream(container: av.container.InputContainer) -> av.VideoStream | None:
    """The first real video stream: cover art inside an audio file does not make it a video."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _audio_stream(container: av.container.InputContainer) -> av.AudioStream | None:
    return container.streams.audio[0] if container.streams.audio else None


def _declared_duration(container: av.container.InputContainer) -> float | None:
    if container.duration is None:
        return None
    return container.duration / av.time_base


DECODER_SLACK_S: Final = 1.0


def _check_length(duration_s: float, max_duration_s: float | None) -> None:
    if max_duration_s is not None and duration_s > max_duration_s:
        raise MediaError(
            MediaErrorCode.TOO_LONG,
            f"the file lasts {duration_s:.1f} s, more than the {max_duration_s:.0f} s allowed",
        )


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
                MediaErrorCode.CORRUPT_MEDIA,
                f"the file is cut short: {self.stream.type} has {self.packets} of {promised} packets",
            )
        declared_s = self.declared_s() if trust_durations else None
        if _falls_short(self.end_s, declared_s):
            raise MediaError(
                MediaErrorCode.CORRUPT_MEDIA,
                f"the file is cut short: its {self.stream.type} track stops at {self.end_s:.1f} s"
                f" of {declared_s:.1f} s",
            )
        if self.packets and not self.decoded:
            raise MediaError(MediaErrorCode.CORRUPT_MEDIA, f"the {self.stream.type} track cannot be decoded")


def _falls_short(end_s: float, declared_s: float | None) -> bool:
    return declared_s is not None and end_s < declared_s * 0.9 - _MISSING_SECONDS_TOLERATED


def probe(path: Path, *, max_duration_s: float | None = None) -> MediaInfo:
    """Reads every packet (no full decode) and the first frame of each track: a truncated or undecodable
    file fails here, before any model runs. Raises MediaError."""
    with _open(path) as container:
        declared_s = _declared_duration(container)
        if declared_s is not None:
            _check_length(declared_s, max_duration_s)
        video, audio = _video_stream(container), _audio_stream(container)
        tallies = {stream.index: _StreamTally(stream) for stream in (video, audio) if stream is not None}
        if not tallies:
            raise MediaError(MediaErrorCode.NOT_MEDIA, "the file has neither a video nor an audio track")
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
            raise MediaError(
                MediaErrorCode.CORRUPT_MEDIA, f"the file is damaged ({error.strerror})"
            ) from error
        trusted = container.format.name not in _GUESSED_DURATION_FORMATS
        for tally in tallies.values():
            tally.check_complete(trusted)
        duration_s = max(tally.end_s for tally in tallies.values())
        # The container's length is the longest stream's: the file as a whole must reach it.
        if trusted and _falls_short(duration_s, declared_s):
            raise MediaError(
                MediaErrorCode.CORRUPT_MEDIA,
                f"the file is cut short: it stops at {duration_s:.1f} s of {declared_s:.1f} s",
            )
        _check_length(duration_s, max_duration_s)
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
    with _open(path) as container:
        stream = _audio_stream(container)
        if stream is None:
            raise MediaError(MediaErrorCode.NO_AUDIO_TRACK, "the file has no audio track")
        # Decoders add a few frames of their own (AAC's priming and last-frame padding: 20 ms on a 2 s file),
        # so the samples of a file `probe` accepts at the limit run a little past it.
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
                    _check_length(total / sample_rate, max_duration_s)
            chunks.extend(
                np.asarray(resampled.to_ndarray(), dtype=np.float32).reshape(-1)
                for resampled in resampler.resample(None)
            )
        except av.error.FFmpegError as error:
            raise MediaError(
                MediaErrorCode.CORRUPT_MEDIA, f"the audio cannot be decoded ({error.strerror})"
            ) from error
    if not chunks:
        raise MediaError(MediaErrorCode.CORRUPT_MEDIA, "the audio track holds no samples")
    samples = np.concatenate(chunks).astype(np.float32, copy=False)
    return np.clip(samples, -1.0, 1.0, out=samples)


@dataclass(frozen=True)
class SpanFrames:
    """The pictures of one utterance."""

    clip: Uint8Array
    """(n_frames, size, size, 3) RGB uniformly over the span, centre-cropped: the video encoder's input."""
    stills: Uint8Array
    """(k, H, W) grey at source resolution (longer side capped), inside the span: for face detection."""


class _Target(NamedTuple):
    time_s: float
    span: int
    slot: int
    is_still: bool


def _targets(spans: Sequence[Span], n_frames: int, stills_per_span: int) -> list[_Target]:
    targets = []
    for index, (start, end) in enumerate(spans):
        length = max(end - start, 0.0)
        targets += [_Target(start + (i + 0.5) * length / n_frames, index, i, False) for i in range(n_frames)]
        targets += [
            _Target(start + (i + 1) * length / (stills_per_span + 1), index, i, True)
            for i in range(stills_per_span)
        ]
    return sorted(targets)


def _square_rgb(frame: av.VideoFrame, size: int) -> Uint8Array:
    # One swscale pass (scale + RGB conversion) to a picture whose shorter side is 2 px more than `size`,
    # then a centred crop: the crop stays inside the source's centred square whatever the rounding, at a
    # zoom of 2/size. Cropping at full resolution first costs three times as much.
    scale = (size + 2) / min(frame.width, frame.height)
    width, height = max(size + 2, round(frame.width * scale)), max(size + 2, round(frame.height * scale))
    rgb = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
    top, left = (height - size) // 2, (width - size) // 2
    return np.ascontiguousarray(rgb[top : top + size, left : left + size], dtype=np.uint8)


def _grey(frame: av.VideoFrame, max_side: int) -> Uint8Array:
    scale = min(1.0, max_side / max(frame.width, frame.height))
    width, height = round(frame.width * scale), round(frame.height * scale)
    grey = frame.reformat(width=width, height=height, format="gray", interpolation="AREA").to_ndarray()
    return np.asarray(grey, dtype=np.uint8)


class _Picker:
    """Gives every target the decoded frame nearest its time, converting a chosen frame once per kind."""

    def __init__(self, size: int, still_max_side: int) -> None:
        self.size, self.still_max_side = size, still_max_side
        self.chosen: dict[tuple[int, bool, int], tuple[float, Uint8Array]] = {}
        self._frame_time: float | None = None
        self._converted: dict[bool, Uint8Array] = {}

    def assign(self, target: _Target, time_s: float, frame: av.VideoFrame) -> None:
        if time_s != self._frame_time:
            # Targets come in time order, so an older frame is never chosen again.
            self._frame_time, self._converted = time_s, {}
        if target.is_still not in self._converted:
            self._converted[target.is_still] = (
                _grey(frame, self.still_max_side) if target.is_still else _square_rgb(frame, self.size)
            )
        self.chosen[(target.span, target.is_still, target.slot)] = (time_s, self._converted[target.is_still])


def sample_span_frames(
    path: Path,
    spans: Sequence[Span],
    *,
    n_frames: int = 30,
    size: int = 112,
    stills_per_span: int = 3,
    still_max_side: int = 480,
) -> list[SpanFrames | None]:
    """Frames for every span from one sequential decode of the file; None for a span the video does not
    reach (or an audio-only file). Decoding stops after the last span."""
    if n_frames < 1 or size < 1 or stills_per_span < 0:
        raise ValueError("n_frames and size must be positive, stills_per_span not negative")
    if not spans:
        return []
    with _open(path) as container:
        stream = _video_stream(container)
        if stream is None:
            return [None] * len(spans)
        # No frame threading: freeing a frame-threaded decoder after stopping mid-stream can deadlock in
        # avcodec_free_context (seen here under load); slice threading has no such hand-off.
        stream.codec_context.thread_type = "SLICE"
        frame_interval = 1 / float(stream.average_rate) if stream.average_rate else 0.1
        start_s = (container.start_time or 0) / av.time_base
        targets = _targets(spans, n_frames, stills_per_span)
        picker = _Picker(size, still_max_side)
        pending = iter(targets)
        target = next(pending, None)
        previous: tuple[float, av.VideoFrame] | None = None
        try:
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                time_s = frame.time - start_s
                while target is not None and target.time_s <= time_s:
                    if previous is not None and target.time_s - previous[0] < time_s - target.time_s:
                        picker.assign(target, *previous)
                    else:
                        picker.assign(target, time_s, frame)
                    target = next(pending, None)
                if target is None:
                    break
                previous = (time_s, frame)
        except av.error.FFmpegError as error:
            logger.warning("decoding %s stopped early: %s", path, error)
        while target is not None and previous is not None:
            picker.assign(target, *previous)
            target = next(pending, None)
    return [
        _collect(picker, index, span, n_frames, stills_per_span, tolerance_s=frame_interval)
        for index, span in enumerate(spans)
    ]


def _collect(
    picker: _Picker, index: int, span: Span, n_frames: int, stills_per_span: int, tolerance_s: float
) -> SpanFrames | None:
    clip = [picker.chosen.get((index, False, slot)) for slot in range(n_frames)]
    stills = [picker.chosen.get((index, True, slot)) for slot in range(stills_per_span)]
    start, end = span
    # Only the frames nearest the targets are known; a span the video reaches has one of them inside it.
    inside = [c for c in clip if c is not None and start - tolerance_s <= c[0] <= end + tolerance_s]
    if not inside:
        return None
    still_arrays = [s[1] for s in stills if s is not None]
    return SpanFrames(
        clip=np.stack([c[1] for c in clip if c is not None]),
        stills=np.stack(still_arrays) if still_arrays else np.zeros((0, 0, 0), dtype=np.uint8),
    )


def sample_stills(
    path: Path, *, interval_s: float, max_side: int = 480
) -> Iterator[tuple[float, Uint8Array]]:
    """Grey pictures of the whole video at a fixed rate: for each tick (k + ½)·interval_s the first decoded
    frame at or after it, as (time in seconds, (H, W) uint8 with the longer side capped at `max_side`).

    One sequential decode that yields as it goes, so a three-hour file never sits in memory. Frames nothing
    refers to are not decoded at all (`skip_frame`): at a few pictures a second they are rarely the ones
    wanted, and skipping them saves about a third of the decoding. Nothing for a file without a picture."""
    if interval_s <= 0 or max_side < 1:
        raise ValueError("interval_s and max_side must be positive")
    with _open(path) as container:
        stream = _video_stream(container)
        if stream is None:
            return
        stream.codec_context.thread_type = "SLICE"  # see sample_span_frames
        stream.codec_context.skip_frame = "NONREF"
        start_s = (container.start_time or 0) / av.time_base
        tick = interval_s / 2
        try:
            for frame in container.decode(stream):
                if frame.time is None or frame.time - start_s < tick:
                    continue
                time_s = frame.time - start_s
                yield time_s, _grey(frame, max_side)
                while tick <= time_s:
                    tick += interval_s
        except av.error.FFmpegError as error:
            logger.warning("decoding %s stopped early: %s", path, error)


def sample_frames(
    path: Path, spans: Sequence[Span], n_frames: int = 30, size: int = 112
) -> list[Uint8Array | None]:
    """Per span: (n_frames, size, size, 3) uint8 RGB frames, or None where the video has none."""
    sampled = sample_span_frames(path, spans, n_frames=n_frames, size=size, stills_per_span=0)
    return [frames.clip if frames is not None else None for frames in sampled]


class FaceBox(NamedTuple):
    x: int
    y: int
    width: int
    height: int


@cache
def _face_cascade() -> object:
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    return Cascade(lbp_frontal_face_cascade_filename())  # type: ignore[no-untyped-call]


def detect_faces(gray: Uint8Array, *, min_fraction: float = 1 / 5) -> list[FaceBox]:
    """Frontal faces no smaller than `min_fraction` of the shorter image side, largest first.

    The size floor is what keeps the LBP cascade fast (~20 ms for a 480×480 frame on one core): a
    talking-head video's face is large, and the many small windows are where the cascade spends its time
    and finds its false positives. Tuned on ../shared/data/talking: a face in each of the 309 frames taken
    every 0.1 s from the five frontal clips (a coarser scale step of 1.15 missed some).
    """
    if gray.ndim != 2:
        raise ValueError(f"expected a 2-d grey image, got shape {gray.shape}")
    side = min(gray.shape)
    return _detect(gray, min_side=max(24, int(side * min_fraction)), max_side=side)


def _detect(gray: Uint8Array, *, min_side: int, max_side: int) -> list[FaceBox]:
    """Faces whose side lies in [min_side, max_side], largest first, one box per face."""
    max_side = min(max_side, *gray.shape)
    if min_side > max_side:
        return []
    detections = _face_cascade().detect_multi_scale(  # type: ignore[attr-defined]
        img=gray,
        scale_factor=1.1,
        step_ratio=1.0,
        min_size=(min_side, min_side),
        max_size=(max_side, max_side),
        min_neighbor_number=2,
    )
    boxes = [FaceBox(int(d["c"]), int(d["r"]), int(d["width"]), int(d["height"])) for d in detections]
    kept: list[FaceBox] = []
    for box in sorted(boxes, key=lambda box: box.width * box.height, reverse=True):
        if not any(_centre_inside(box, larger) for larger in kept):
            kept.append(box)
    return kept


class FaceTracker:
    """Follows the largest face from one picture of a video to the next.

    Where the face was a moment ago, it is looked for only around its last box and near its last size, which
    costs a few milliseconds instead of a whole-frame search; the whole frame is searched when the face is
    lost, and every `refresh_s` anyway, so a false detection or a second, larger face is not followed forever.
    """

    def __init__(self, *, refresh_s: float = 5.0, min_fraction: float = 1 / 5) -> None:
        self.refresh_s = refresh_s
        self.min_fraction = min_fraction
        self._box: FaceBox | None = None
        self._searched_at = -float("inf")

    def find(self, gray: Uint8Array, time_s: float) -> FaceBox | None:
        if self._box is not None and time_s - self._searched_at < self.refresh_s:
            self._box = self._near(gray, self._box)
        else:
            self._box = None
        if self._box is None:
            faces = detect_faces(gray, min_fraction=self.min_fraction)
            self._box = faces[0] if faces else None
            self._searched_at = time_s
        return self._box

    @staticmethod
    def _near(gray: Uint8Array, box: FaceBox) -> FaceBox | None:
        side = max(box.width, box.height)
        margin = side // 2
        top, left = max(0, box.y - margin), max(0, box.x - margin)
        region = gray[top : box.y + box.height + margin, left : box.x + box.width + margin]
        found = _detect(region, min_side=max(24, int(side / 1.3)), max_side=int(side * 1.3) + 1)
        if not found:
            return None
        x, y, width, height = found[0]
        return FaceBox(x + left, y + top, width, height)


def _centre_inside(box: FaceBox, other: FaceBox) -> bool:
    """The cascade reports one face at neighbouring scales as overlapping boxes; keep the largest."""
    centre_x, centre_y = box.x + box.width / 2, box.y + box.height / 2
    return other.x <= centre_x <= other.x + other.width and other.y <= centre_y <= other.y + other.height


def crop_face(gray: Uint8Array, box: FaceBox | tuple[int, int, int, int], size: int = 48) -> Uint8Array:
    """The box's pixels resized to (size, size) uint8, as the FER network takes them."""
    from skimage.transform import resize

    x, y, width, height = box
    crop = gray[max(0, y) : y + height, max(0, x) : x + width]
    if crop.size == 0:
        raise ValueError(f"box {tuple(box)} lies outside the {gray.shape} image")
    scaled = resize(crop, (size, size), anti_aliasing=True, preserve_range=True)  # type: ignore[no-untyped-call]
    return np.asarray(np.clip(np.rint(scaled), 0, 255), dtype=np.uint8)
