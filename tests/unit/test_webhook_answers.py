"""A receiver's answer is kept bounded whatever its encoding: a gzip bomb inflates only to the kept length."""

import gzip
import zlib

from services.gateway.webhooks.answers import KEPT_BYTES, RAW_READ_BYTES, inflate_bounded


def test_a_gzip_bomb_inflates_only_to_the_kept_length() -> None:
    bomb = gzip.compress(b"\0" * (256 * 1024 * 1024), compresslevel=9)  # 256 MiB in ~250 KiB
    raw = bomb[:RAW_READ_BYTES]  # what the dispatcher reads of it at most
    assert len(inflate_bounded(raw, "gzip")) == KEPT_BYTES


def test_readable_encodings_decode_and_others_are_named() -> None:
    assert inflate_bounded(b"ok", "") == b"ok"
    assert inflate_bounded(b"x" * 5000, "identity") == b"x" * KEPT_BYTES
    assert inflate_bounded(gzip.compress(b"thanks"), "gzip") == b"thanks"
    assert inflate_bounded(zlib.compress(b"thanks"), "Deflate") == b"thanks"
    assert inflate_bounded(b"\x1b\x00", "br") == b"(br-encoded answer of 2 bytes, not decoded)"
    assert inflate_bounded(b"not gzip at all", "gzip") == b"(undecodable gzip answer)"
