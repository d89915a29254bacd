"""Which address a request came from, for the per-client limits of sign-up and login.

Behind a load balancer or ingress every connection comes from the proxy: keyed on that, one client's
burst would lock everyone out, and a limit per client would be no limit. A proxy appends the address it
saw to `X-Forwarded-For`; anything to the left of that may be what the client itself sent. So the header
is believed only when the connection comes from a configured proxy network (`EA_TRUSTED_PROXIES`), and
the client is the right-most address in the chain that is not such a proxy.

The limits count per /64 for IPv6 (`limit_key`): one host is routinely given a whole /64 and may take any
address in it, so counting per address would let it make a fresh one for every attempt.
"""

import ipaddress
from collections.abc import Iterable, Sequence

from pydantic import IPvAnyNetwork
from starlette.requests import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().removeprefix("[").split("]")[0])
    except ValueError:
        return None


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[Network]) -> bool:
    return any(address.version == network.version and address in network for network in proxies)


def client_address(peer: str | None, forwarded_for: Iterable[str], proxies: Sequence[Network]) -> str:
    """The client's address: the peer itself unless it is a trusted proxy; else the right-most address of
    X-Forwarded-For (all its headers, in order) that is not one. A chain of only trusted proxies gives its
    left-most; an unreadable entry stops the walk at the last proxy that vouched for it."""
    if peer is None:
        return UNKNOWN
    last = _address(peer)
    if last is None or not _trusted(last, proxies):
        return peer
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return str(last)
        last = address
        if not _trusted(address, proxies):
            return str(address)
    return str(last)


def request_client_address(request: Request, proxies: Sequence[IPvAnyNetwork]) -> str:
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.getlist("x-forwarded-for"), proxies)


IPV6_LIMIT_PREFIX = 64


def limit_key(address: str) -> str:
    """What a per-client limit counts: an IPv4 address itself (also written IPv4-mapped in IPv6), an IPv6
    address's /64 network; anything unreadable as it is."""
    parsed = _address(address)
    if parsed is None:
        return address
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((parsed, IPV6_LIMIT_PREFIX), strict=False))
    return str(parsed.ipv4_mapped if isinstance(parsed, ipaddress.IPv6Address) else parsed)


def request_limit_key(request: Request, proxies: Sequence[IPvAnyNetwork]) -> str:
    """The key of the request's client in the per-client limits."""
    return limit_key(request_client_address(request, proxies))
