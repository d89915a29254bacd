"""Which files the gateway accepts by name, and what type it serves a stored file as.

The first bytes are sniffed by `shared.media.container`, as the stages do; whether the streams decode is
the transcriber's problem.
"""

import re
import unicodedata
from pathlib import PurePosixPath
from typing import Final

from shared.media.container import Container, sniff_container

CONTENT_TYPES: Final[dict[str, str]] = {
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "m4v": "video/x-m4v",
    "mkv": "video/x-matroska",
    "webm": "video/webm",
    "avi": "video/x-msvideo",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "aac": "audio/aac",
}
SUPPORTED_EXTENSIONS: Final = frozenset(CONTENT_TYPES)
# An upload-url request may declare one of these (any case); the file's own bytes are checked later anyway.
ACCEPTED_CONTENT_TYPES: Final = ("video/", "audio/", "application/octet-stream")
MAX_FILENAME_LENGTH: Final = 128

_UNSAFE_CHARACTERS: Final = re.compile(r"[^A-Za-z0-9._-]+")


def _any_case(text: str) -> str:
    """A regular expression for `text` in any letter case: JSON Schema patterns take no flags.
    The texts it is used on hold no regular-expression metacharacters."""
    return "".join(f"[{char.lower()}{char.upper()}]" if char.isalpha() else char for char in text)


# What `sanitise_filename` accepts, for the API schema: a supported extension after a character that does
# not end the path (`clip/.mp4` is a file without extension), not even after NFKC (`／`, `＼`, `﹨`).
FILENAME_PATTERN: Final = (
    r"[^\s/\\\uFF0F\uFF3C\uFE68]\.(?:"
    + "|".join(_any_case(extension) for extension in sorted(SUPPORTED_EXTENSIONS))
    + r")\s*$"
)
CONTENT_TYPE_PATTERN: Final = "^(?:" + "|".join(_any_case(prefix) for prefix in ACCEPTED_CONTENT_TYPES) + ")"


class UnsupportedFileTypeError(ValueError):
    """The filename's extension is not a video or audio type the pipeline reads."""


def extension_of(filename: str) -> str:
    return PurePosixPath(filename).suffix.lower().removeprefix(".")


def sanitise_filename(filename: str) -> str:
    """A safe object-key segment for the client's filename, keeping its (lower-cased) extension.

    Raises UnsupportedFileTypeError when the extension is not a supported video/audio type.
    """
    basename = re.split(r"[\\/]", unicodedata.normalize("NFKC", filename))[-1].strip()
    extension = extension_of(basename)
    if extension not in SUPPORTED_EXTENSIONS:
        supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        shown = f".{extension}" if extension else "no extension"
        raise UnsupportedFileTypeError(f"{filename!r} has {shown}; supported types are {supported}")
    stem = _UNSAFE_CHARACTERS.sub("_", basename[: -len(extension) - 1]).strip("._-")
    stem = stem[: MAX_FILENAME_LENGTH - len(extension) - 1] or "upload"
    return f"{stem}.{extension}"


def content_type_for(filename: str) -> str:
    return CONTENT_TYPES.get(extension_of(filename), "application/octet-stream")


# What each container may be served as; the first is the container's own when the name says otherwise.
SERVED_TYPES: Final[dict[Container, tuple[str, ...]]] = {
    Container.ISO_BMFF: ("video/mp4", "video/quicktime", "video/x-m4v", "audio/mp4"),
    Container.WAVE: ("audio/wav",),
    Container.AVI: ("video/x-msvideo",),
    Container.MPEG_AUDIO: ("audio/mpeg", "audio/aac"),
    Container.FLAC: ("audio/flac",),
    Container.OGG: ("audio/ogg",),
    Container.MATROSKA: ("video/x-matroska", "video/webm"),
    Container.FLV: ("video/x-flv",),
    Container.ASF: ("video/x-ms-asf",),
    Container.MPEG_PS: ("video/mpeg",),
    Container.MPEG_TS: ("video/mp2t",),
}


def served_type(head: bytes, filename: str) -> str:
    """The type to serve a stored file as: from its own first bytes (whatever type the uploader claimed),
    refined by its name within that container; bytes that announce no media are served as opaque."""
    container = sniff_container(head)
    if container is None:
        return "application/octet-stream"
    allowed = SERVED_TYPES[container]
    named = content_type_for(filename)
    return named if named in allowed else allowed[0]
