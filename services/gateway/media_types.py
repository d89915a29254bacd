"""Which files the gateway accepts: extensions of supported video/audio types, and a sniff of the first bytes.

Only the container is recognised here; whether its streams decode is the transcriber's problem.
"""

import re
import unicodedata
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Final

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
SNIFF_BYTES: Final = 64
MAX_FILENAME_LENGTH: Final = 128

_UNSAFE_CHARACTERS: Final = re.compile(r"[^A-Za-z0-9._-]+")
# QuickTime files from before ISO-BMFF may open with one of these atoms instead of 'ftyp'.
_QUICKTIME_ATOMS: Final = frozenset({b"ftyp", b"moov", b"mdat", b"wide"})


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


class Container(StrEnum):
    ISO_BMFF = "iso-bmff"
    WAVE = "wave"
    AVI = "avi"
    MPEG_AUDIO = "mpeg-audio"
    FLAC = "flac"
    OGG = "ogg"
    MATROSKA = "matroska"


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


def sniff_container(head: bytes) -> Container | None:
    """The media container the file's first bytes announce, or None when they announce none we read."""
    if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS:
        return Container.ISO_BMFF
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return Container.WAVE
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return Container.AVI
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        # An ID3 tag, or an MPEG audio / ADTS frame: eleven sync bits set (0xFFE).
        return Container.MPEG_AUDIO
    if head[:4] == b"fLaC":
        return Container.FLAC
    if head[:4] == b"OggS":
        return Container.OGG
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return Container.MATROSKA
    return None


# What each container may be served as; the first is the container's own when the name says otherwise.
_SERVED_TYPES: Final[dict[Container, tuple[str, ...]]] = {
    Container.ISO_BMFF: ("video/mp4", "video/quicktime", "video/x-m4v", "audio/mp4"),
    Container.WAVE: ("audio/wav",),
    Container.AVI: ("video/x-msvideo",),
    Container.MPEG_AUDIO: ("audio/mpeg", "audio/aac"),
    Container.FLAC: ("audio/flac",),
    Container.OGG: ("audio/ogg",),
    Container.MATROSKA: ("video/x-matroska", "video/webm"),
}


def served_type(head: bytes, filename: str) -> str:
    """The type to serve a stored file as: from its own first bytes (whatever type the uploader claimed),
    refined by its name within that container; bytes that announce no media are served as opaque."""
    container = sniff_container(head)
    if container is None:
        return "application/octet-stream"
    allowed = _SERVED_TYPES[container]
    named = content_type_for(filename)
    return named if named in allowed else allowed[0]
