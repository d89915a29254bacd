"""Which URLs a webhook may be sent to: checked when a subscription is created, and again at every connection.

Without these checks anyone who can create a subscription could make the gateway send requests into its
own network (SSRF): the cloud metadata service, the database, the cluster's internal services.

A delivery connects through `PinnedNetworkBackend`: it resolves the host once, checks every address and
connects to a checked one. There is no second lookup for a name whose DNS answers change (TTL 0) to swap
a private address in after the check (DNS rebinding). TLS still verifies the certificate for, and sends
SNI of, the URL's host name. Redirects are never followed, so a public receiver cannot bounce a delivery
inward either; the Kubernetes NetworkPolicy is a second, independent fence.
"""

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Final
from urllib.parse import SplitResult, urlsplit

import httpcore
import httpx

MAX_URL_LENGTH: Final = 2048
ALLOWED_SCHEMES: Final = frozenset({"http", "https"})
DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# The NAT64 prefixes carry an IPv4 address in their last 32 bits (RFC 6052, RFC 8215).
_NAT64_NETWORKS: Final = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
logger = logging.getLogger(__name__)


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


def validate_subscription_url(url: str, *, allow_private: bool, ports: Collection[int] | None = None) -> str:
    """The URL when it can be a webhook target; InvalidTargetError otherwise. `ports`: the ports it may
    name (its scheme's own where it names none); None or empty: any.

    Host names are not resolved here (their addresses may change until a delivery is sent, where
    `permitted_addresses` resolves them), but literal addresses and `localhost` are checked now.
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
    port = parts.port or DEFAULT_PORTS[parts.scheme.lower()]
    if ports and port not in ports:
        allowed = ", ".join(str(p) for p in sorted(ports))
        raise InvalidTargetError(f"port {port} is not one this service connects to ({allowed})")
    if not allow_private:
        if _is_localhost_name(host):
            raise InvalidTargetError(f"{host} is this machine; only public hosts are reached")
        address = _literal_address(host)
        if address is not None and not is_public(address):
            raise InvalidTargetError(f"{address} is not a public address; only public hosts are reached")
    return url


# getaddrinfo's answer: (family, type, proto, canonname, sockaddr) tuples.
AddressInfo = tuple[int, int, int, str, tuple[str, int] | tuple[str, int, int, int]]
Resolver = Callable[[str, int], Awaitable[list[AddressInfo]]]


async def system_resolver(host: str, port: int) -> list[AddressInfo]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(infos)  # type: ignore[arg-type]


async def permitted_addresses(
    host: str, port: int, *, allow_private: bool, resolve: Resolver = system_resolver
) -> list[IPAddress]:
    """The host's addresses, in the resolver's order, once every one of them passed the policy.

    TargetRefusedError when the host is this machine or any address is not public (unless
    `allow_private`); UnresolvableTargetError when the name does not resolve now.
    """
    if not allow_private and _is_localhost_name(host):
        raise TargetRefusedError(f"{host} is this machine")
    literal = _literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await resolve(host, port)
        except OSError as exc:
            raise UnresolvableTargetError(f"could not resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        if not addresses:
            raise UnresolvableTargetError(f"{host} has no addresses")
    if not allow_private:
        # Every address, not just the first: a connection may be made to any of them.
        for address in addresses:
            if not is_public(address):
                if literal is not None:
                    raise TargetRefusedError(f"{address} is not a public address")
                # The tenant is not told which address: that would map this network's private names.
                logger.warning("refused %s: it resolves to %s, which is not public", host, address)
                raise TargetRefusedError(f"{host} resolves to an address that is not a public address")
    return addresses


class PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses `permitted_addresses` has just checked."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolve: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
        ports: Collection[int] | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._ports = frozenset(ports or ())
        self._resolve = resolve
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self._ports and port not in self._ports:
            raise TargetRefusedError(f"port {port} is not one this service connects to")
        addresses = await permitted_addresses(
            host, port, allow_private=self._allow_private, resolve=self._resolve
        )
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # permitted_addresses never returns an empty list
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise TargetRefusedError("webhooks are not sent over Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport, with no proxy from the environment, connecting through `PinnedNetworkBackend`."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolve: Resolver = system_resolver,
        ports: Collection[int] | None = None,
    ) -> None:
        super().__init__(trust_env=False)
        # httpx builds its httpcore pool without a way to pass a network backend; this one is the same pool
        # (httpx's defaults) but for the backend. tests/integration/test_webhooks.py checks it is used.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=PinnedNetworkBackend(allow_private=allow_private, resolve=resolve, ports=ports),
        )


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
