"""Fetching a file to analyse from a URL, under the same outbound guard as webhooks.

Every hop is checked as a webhook target is (http(s), no credentials, and, unless private targets are
allowed, only public addresses, checked as the connection is opened to the very address used: no DNS
rebinding), redirects are followed by hand so that each new location passes the same checks, the body is
streamed to a temporary file and cut off past the size limit, and one deadline covers the whole fetch, so
a slow or endless body cannot hold the request. What comes back is then checked like an upload.
"""

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from shared.media.container import SNIFF_BYTES, Container, sniff_container

from .intake import FileTooLarge, IntakeError, UnsupportedFile
from .media_types import SUPPORTED_EXTENSIONS, sanitise_filename
from .webhooks.targets import (
    InvalidTargetError,
    PinnedTransport,
    Resolver,
    TargetRefusedError,
    UnresolvableTargetError,
    system_resolver,
    validate_subscription_url,
)

MAX_REDIRECTS: Final = 5
USER_AGENT: Final = "emotion-analyzer-fetch/1"
REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
PAGE_TYPES: Final = ("text/html", "application/xhtml+xml")
# A name for a file whose URL gives none with a supported extension, from what its first bytes are.
EXTENSION_OF: Final = {
    Container.ISO_BMFF: "mp4",
    Container.MATROSKA: "mkv",
    Container.WAVE: "wav",
    Container.AVI: "avi",
    Container.MPEG_AUDIO: "mp3",
    Container.FLAC: "flac",
    Container.OGG: "ogg",
}


class InvalidUrl(IntakeError):
    code = "invalid_url"


class UrlUnreachable(IntakeError):
    code = "url_unreachable"


class UrlTooSlow(IntakeError):
    code = "url_too_slow"


@dataclass(frozen=True)
class FetchedFile:
    path: Path
    filename: str
    size: int


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int
    timeout_s: float
    connect_timeout_s: float
    allow_private: bool
    ports: frozenset[int] = frozenset()  # empty: any


async def fetch_to_file(url: str, limits: FetchLimits, *, resolve: Resolver = system_resolver) -> FetchedFile:
    """Download `url` to a temporary file (the caller deletes it); an `IntakeError` for every way it can go
    wrong: a URL that may not be fetched, a host that does not answer or answers an error, an HTML page,
    a body over the limit or slower than the deadline."""
    transport = PinnedTransport(allow_private=limits.allow_private, resolve=resolve, ports=limits.ports)
    per_read = httpx.Timeout(limits.timeout_s, connect=limits.connect_timeout_s)
    started = time.monotonic()
    async with httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=False) as http:
        try:
            async with asyncio.timeout(limits.timeout_s):
                return await _fetch(http, url, limits, per_read)
        except TimeoutError as exc:
            waited = time.monotonic() - started
            raise UrlTooSlow(f"the URL did not deliver the file within {waited:.0f} s") from exc


async def _fetch(
    http: httpx.AsyncClient, url: str, limits: FetchLimits, per_read: httpx.Timeout
) -> FetchedFile:
    for _ in range(MAX_REDIRECTS + 1):
        checked = _checked(url, limits)
        async with _get(http, checked, per_read) as response:
            if response.status_code in REDIRECTS and "location" in response.headers:
                url = urljoin(checked, response.headers["location"])
                continue
            if response.status_code != httpx.codes.OK:
                raise UrlUnreachable(f"the URL answered HTTP {response.status_code}, not the file")
            _refuse_pages(response)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limits.max_bytes:
                raise FileTooLarge(limits.max_bytes)
            return await _save(response, _name_in(str(response.url)), limits.max_bytes)
    raise UrlUnreachable(f"the URL redirects more than {MAX_REDIRECTS} times")


def _checked(url: str, limits: FetchLimits) -> str:
    try:
        return validate_subscription_url(url, allow_private=limits.allow_private, ports=limits.ports)
    except InvalidTargetError as exc:
        raise InvalidUrl(f"url: {exc}") from exc


@contextlib.asynccontextmanager
async def _get(http: httpx.AsyncClient, url: str, per_read: httpx.Timeout) -> AsyncIterator[httpx.Response]:
    headers = {"user-agent": USER_AGENT, "accept-encoding": "identity"}
    try:
        async with http.stream("GET", url, headers=headers, timeout=per_read) as response:
            yield response
    except TargetRefusedError as exc:
        raise InvalidUrl(f"url: {exc}") from exc
    except UnresolvableTargetError as exc:
        raise UrlUnreachable(f"the URL's host is unknown: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise UrlTooSlow(f"the URL's host did not answer in time ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise UrlUnreachable(f"the URL could not be fetched: {type(exc).__name__}: {exc}") from exc


def _refuse_pages(response: httpx.Response) -> None:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in PAGE_TYPES:
        raise UnsupportedFile(
            "not_media",
            f"the URL serves a web page ({content_type}), not a video or audio file: link the file",
        )


def _name_in(url: str) -> str | None:
    """The URL path's last segment when it names a supported file, else None (named from its bytes)."""
    name = unquote(PurePosixPath(urlsplit(url).path).name)
    if name.rpartition(".")[2].lower() not in SUPPORTED_EXTENSIONS:
        return None
    try:
        return sanitise_filename(name)
    except ValueError:
        return None


async def _save(response: httpx.Response, filename: str | None, max_bytes: int) -> FetchedFile:
    descriptor, name = tempfile.mkstemp(prefix="ea-fetch-")
    path, size, head = Path(name), 0, b""
    try:
        with os.fdopen(descriptor, "wb") as sink:
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > max_bytes:
                    raise FileTooLarge(max_bytes)
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
                await asyncio.to_thread(sink.write, chunk)
    except BaseException:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    container = sniff_container(head)
    if filename is None:
        filename = f"download.{EXTENSION_OF.get(container, 'mp4') if container else 'mp4'}"
    return FetchedFile(path=path, filename=filename, size=size)
