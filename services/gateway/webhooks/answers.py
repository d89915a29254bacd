"""What a receiver answered, kept for the deliveries list: its first kilobyte, read without letting the
receiver choose how much memory that takes.

httpx decodes gzip, deflate and brotli as it reads, so one 64 KiB network read of a gzip bomb becomes
142 MiB before the first kilobyte can be cut off. Deliveries ask for `identity`; a receiver that compresses
anyway has its raw bytes read up to a small cap and inflated only up to the kept length.
"""

import zlib
from typing import Final

import httpx

KEPT_BYTES: Final = 1024
RAW_READ_BYTES: Final = 16 * 1024
# zlib's window bits: 16 + 15 reads the gzip wrapper, 15 zlib's; "deflate" in HTTP means the zlib format.
_WBITS: Final = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def inflate_bounded(raw: bytes, encoding: str, limit: int = KEPT_BYTES) -> bytes:
    """At most `limit` bytes of `raw` decoded from its Content-Encoding; a note for what is not decoded."""
    encoding = encoding.strip().lower() or "identity"
    if encoding == "identity":
        return raw[:limit]
    wbits = _WBITS.get(encoding)
    if wbits is None:
        return f"({encoding}-encoded answer of {len(raw)} bytes, not decoded)".encode()[:limit]
    try:
        return zlib.decompressobj(wbits).decompress(raw, limit)
    except zlib.error:
        return f"(undecodable {encoding} answer)".encode()[:limit]


async def answer_head(response: httpx.Response) -> str:
    """The first KEPT_BYTES of the answer's body, as text PostgreSQL can store."""
    raw = bytearray()
    async for chunk in response.aiter_raw():
        raw.extend(chunk)
        if len(raw) >= RAW_READ_BYTES:
            break
    head = inflate_bounded(bytes(raw[:RAW_READ_BYTES]), response.headers.get("content-encoding", ""))
    return head.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
