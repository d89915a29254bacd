"""An upload's duration, from its container header only, for charging the seconds quota before analysis.

Reading the header (PyAV, no decoding) costs a few small reads, also over a presigned URL, where FFmpeg
fetches only the byte ranges it needs. The pipeline's own probe later checks every packet.
"""

from typing import Final

import av
from fastapi import status

from .errors import ApiError

OPEN_TIMEOUT_S: Final = 20.0


def declared_duration_s(source: str) -> float:
    """Seconds of media `source` (a path or URL) declares; a 422 ApiError when it cannot be read."""
    try:
        container = av.open(source, mode="r", timeout=OPEN_TIMEOUT_S)
    except (av.error.FFmpegError, OSError) as exc:
        raise unreadable(f"the file looks like media but cannot be read ({_reason(exc)})") from exc
    try:
        streams = [*container.streams.video, *container.streams.audio]
        if not streams:
            raise unreadable("the file has neither a video nor an audio track")
        if container.duration is not None and container.duration > 0:
            return float(container.duration / av.time_base)
        durations = [
            float(stream.duration * stream.time_base)
            for stream in streams
            if stream.duration is not None and stream.time_base is not None
        ]
        if not durations or max(durations) <= 0:
            raise unreadable("the file does not say how long it is")
        return max(durations)
    finally:
        container.close()


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


def unreadable(message: str) -> ApiError:
    return ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT, "corrupt_media", message)
