"""Pictures from a video: frames per utterance for the clip encoder, grey stills for the face track."""

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeAlias

import av
import av.error
import numpy as np
import numpy.typing as npt

from shared.media.container import open_media, video_stream

logger = logging.getLogger(__name__)

Span: TypeAlias = tuple[float, float]
Uint8Array: TypeAlias = npt.NDArray[np.uint8]


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
    with open_media(path) as container:
        stream = video_stream(container)
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
    with open_media(path) as container:
        stream = video_stream(container)
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
