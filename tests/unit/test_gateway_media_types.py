"""Which files the gateway accepts, by name and by their first bytes."""

import pytest

from services.gateway.media_types import (
    SERVED_TYPES,
    SUPPORTED_EXTENSIONS,
    UnsupportedFileTypeError,
    content_type_for,
    sanitise_filename,
)
from shared.media.container import Container, sniff_container


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("talk.mp4", "talk.mp4"),
        ("My Talk (final).MP4", "My_Talk_final.mp4"),
        ("../../etc/passwd.wav", "passwd.wav"),
        ("C:\\Users\\me\\clip.mov", "clip.mov"),
        ("..mkv", "upload.mkv"),
        ("résumé vidéo.webm", "r_sum_vid_o.webm"),
        ("a" * 300 + ".flac", "a" * 123 + ".flac"),
    ],
)
def test_filenames_become_safe_key_segments(given: str, kept: str) -> None:
    assert sanitise_filename(given) == kept


@pytest.mark.parametrize("name", ["slides.pdf", "clip", "archive.mp4.zip", "noext.", "photo.png"])
def test_other_types_are_refused(name: str) -> None:
    with pytest.raises(UnsupportedFileTypeError, match="supported types are"):
        sanitise_filename(name)


def test_every_supported_extension_has_a_video_or_audio_content_type() -> None:
    assert all(
        content_type_for(f"x.{ext}").split("/")[0] in ("video", "audio") for ext in SUPPORTED_EXTENSIONS
    )


@pytest.mark.parametrize(
    ("head", "container"),
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", Container.ISO_BMFF),
        (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", Container.ISO_BMFF),
        (b"RIFF\x24\x08\x00\x00WAVEfmt ", Container.WAVE),
        (b"RIFF\x24\x08\x00\x00AVI LIST", Container.AVI),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", Container.MPEG_AUDIO),
        (b"\xff\xfb\x90\x64\x00", Container.MPEG_AUDIO),
        (b"\xff\xf1\x50\x80\x00", Container.MPEG_AUDIO),  # ADTS AAC
        (b"fLaC\x00\x00\x00\x22", Container.FLAC),
        (b"OggS\x00\x02\x00\x00", Container.OGG),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", Container.MATROSKA),
        (b"\x00\x00\x00\x08free\x00\x00\x00\x00", Container.ISO_BMFF),
        (b"FLV\x01\x05\x00\x00\x00\x09", Container.FLV),
        (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", Container.ASF),
        (b"\x00\x00\x01\xba\x44\x00\x04\x00", Container.MPEG_PS),
        (b"\x47\x40\x00\x10" + bytes(184) + b"\x47\x40\x11\x10", Container.MPEG_TS),
    ],
)
def test_known_containers_are_recognised(head: bytes, container: Container) -> None:
    assert sniff_container(head) is container


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\xff",
        b"%PDF-1.7\n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"RIFF\x24\x08\x00\x00WEBPVP8 ",
        b"\xff\xd8\xff\xe0\x00\x10JFIF",  # JPEG: 0xFF but no frame sync
        b"just some text, not a video at all",
    ],
)
def test_other_bytes_are_not_media(head: bytes) -> None:
    assert sniff_container(head) is None


def test_every_container_the_sniffer_knows_has_a_type_to_be_served_as() -> None:
    for container in Container:
        assert container in SERVED_TYPES
