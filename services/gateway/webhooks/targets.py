"""Which URLs a webhook may be sent to: checked when a subscription is created, and again at every send.

Without these checks anyone who can create a subscription could make the gateway send requests into its
own network (SSRF): the cloud metadata service, the database, the cluster's internal services.

Residual risk, DNS rebinding: `check_target` resolves the host and checks every address, but the HTTP
client resolves it again when it connects. A name whose DNS answers change between the two lookups
(TTL 0) can pass the check with a public address and then connect to a private one. Closing that
needs the connection pinned to the checked address, or an egress policy that blocks private ranges
for the gateway (a Kubernetes NetworkPolicy, an egress proxy); the checks here stop everything else.
Redirects are never followed, so a public receiver cannot bounce a delivery inward either.
"""

import asyncio
import ipaddress
import socket
from typing import Final
from urllib.parse import SplitResult, urlsplit

MAX_URL_LENGTH: Final = 2048
ALLOWED_SCHEMES: Final = frozenset({"http", "https"})
DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# The NAT64 prefixes carry an IPv4 address in their last 32 bits (RFC 6052, RFC 8215).
_NAT64_NETWORKS: Final = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class InvalidTargetError(ValueError):
    """The URL can never be a webhook target; the message says why."""


class TargetRefusedError(Exception):
    """At send time the host resolved to an address webhooks may not reach: retrying will not help."""


class UnresolvableTargetError(Exception):
    """The host did not resolve (now): worth another try later."""


def is_public(address: IPAddress) -> bool:
    """Whether the address is globally routable unicast: not private, loopback, link-local, multicast,
    reserved, unspecified or shared (CGNAT), nor an IPv6 form wrapping such an IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and not is_public(embedded):
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def validate_subscription_url(url: str, *, allow_private: bool) -> str:
    """The URL when it can be a webhook target; InvalidTargetError otherwise.

    Host names are not resolved here (their addresses may change until a delivery is sent, where
    `check_target` resolves them), but literal addresses and `localhost` are checked now.
    """
    if len(url) > MAX_URL_LENGTH:
        raise InvalidTargetError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(character.isspace() or not character.isprintable() for character in url):
        raise InvalidTargetError("the URL contains whitespace or control characters")
    parts = _split(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise InvalidTargetError("the URL must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise InvalidTargetError("the URL must not contain credentials; authenticate by the signature")
    host = parts.hostname
    if not host:
        raise InvalidTargetError("the URL names no host")
    if not allow_private:
        if _is_localhost_name(host):
            raise InvalidTargetError(f"{host} is this machine; webhooks go to public hosts")
        address = _literal_address(host)
        if address is not None and not is_public(address):
            raise InvalidTargetError(f"{address} is not a public address; webhooks go to public hosts")
    return url


async def check_target(url: str, *, allow_private: bool) -> None:
    """Resolve the URL's host and refuse it (TargetRefusedError) when any of its addresses is not public."""
    parts = _split(url)
    host = parts.hostname
    if not host:
        raise TargetRefusedError("the URL names no host")
    if allow_private:
        return
    if _is_localhost_name(host):
        raise TargetRefusedError(f"{host} is this machine")
    port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnresolvableTargetError(f"could not resolve {host}: {exc}") from exc
    # Every address, not just the first: the HTTP client may connect to any of them.
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if not is_public(address):
            raise TargetRefusedError(f"{host} resolves to {address}, which is not a public address")


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise InvalidTargetError(f"the URL is malformed: {exc}") from exc
    return parts


def _is_localhost_name(host: str) -> bool:
    # RFC 6761: localhost and every name under it resolve to loopback.
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def _literal_address(host: str) -> IPAddress | None:
    """The address a host written as an IP literal stands for, including the legacy IPv4 forms
    resolvers still accept (`2130706433`, `0x7f.1`, `127.1`)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in _NAT64_NETWORKS):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    # IPv4-compatible (::a.b.c.d, deprecated) addresses still reach IPv4 hosts on some stacks.
    if int(address) >> 32 == 0:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
