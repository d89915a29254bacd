"""Webhook targets: only http(s) URLs of public hosts, at subscription time and again at each connection."""

import ipaddress
import socket

import httpcore
import pytest

from services.gateway.webhooks.targets import (
    AddressInfo,
    InvalidTargetError,
    PinnedNetworkBackend,
    TargetRefusedError,
    UnresolvableTargetError,
    is_public,
    permitted_addresses,
    validate_subscription_url,
)

NOT_PUBLIC = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # shared address space (CGNAT)
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fd00::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "2002:7f00:1::1",  # 6to4 around 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 around 10.0.0.1
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "2001:4860:4860::8888"]


def _url(address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:8443/hook"


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_non_public_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_a_literal_non_public_address_is_refused_at_creation(address: str) -> None:
    with pytest.raises(InvalidTargetError, match="not a public address"):
        validate_subscription_url(_url(address), allow_private=False)


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_allow_private_admits_them(address: str) -> None:
    assert validate_subscription_url(_url(address), allow_private=True) == _url(address)


@pytest.mark.parametrize(
    "url",
    ["https://example.com/hooks", "http://hooks.example.org:8080/a?b=c", *(_url(a) for a in PUBLIC)],
)
def test_public_hosts_are_accepted(url: str) -> None:
    assert validate_subscription_url(url, allow_private=False) == url


@pytest.mark.parametrize("url", ["http://2130706433/", "http://0x7f.1/", "http://127.1/"])
def test_legacy_ipv4_spellings_of_loopback_are_refused(url: str) -> None:
    with pytest.raises(InvalidTargetError, match="not a public address"):
        validate_subscription_url(url, allow_private=False)


@pytest.mark.parametrize("url", ["http://localhost:8000/", "https://api.localhost/", "http://LOCALHOST./"])
def test_localhost_names_are_refused(url: str) -> None:
    with pytest.raises(InvalidTargetError, match="this machine"):
        validate_subscription_url(url, allow_private=False)
    assert validate_subscription_url(url, allow_private=True) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("example.com/hook", "http:// or https://"),
        ("https:///path-only", "no host"),
        ("https://user:pass@example.com/", "credentials"),
        ("https://token@example.com/", "credentials"),
        ("https://example.com:99999/", "malformed"),
        ("https://example.com/a b", "whitespace"),
        ("https://example.com/\n", "whitespace"),
        ("https://example.com/" + "a" * 2048, "longer than"),
    ],
)
def test_malformed_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(InvalidTargetError, match=reason):
        validate_subscription_url(url, allow_private=True)


async def test_a_name_resolving_to_loopback_is_refused_at_send_time() -> None:
    # A name, not a literal: resolution (here from /etc/hosts) is what finds the loopback address.
    with pytest.raises(TargetRefusedError):
        await permitted_addresses("localhost", 9, allow_private=False)
    with pytest.raises(TargetRefusedError, match=r"127\.0\.0\.1"):
        await permitted_addresses("2130706433", 9, allow_private=False)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.7", "169.254.169.254", "::1", "fe80::1"])
async def test_non_public_addresses_are_refused_at_send_time(address: str) -> None:
    with pytest.raises(TargetRefusedError, match="not a public address"):
        await permitted_addresses(address, 443, allow_private=False)
    assert await permitted_addresses(address, 443, allow_private=True) == [ipaddress.ip_address(address)]


@pytest.mark.parametrize("address", PUBLIC)
async def test_public_addresses_pass_at_send_time(address: str) -> None:
    assert await permitted_addresses(address, 443, allow_private=False) == [ipaddress.ip_address(address)]


async def test_a_name_that_does_not_resolve_is_worth_retrying() -> None:
    # .invalid never resolves (RFC 6761).
    with pytest.raises(UnresolvableTargetError):
        await permitted_addresses("no-such-host.invalid", 443, allow_private=False)


def answers(*addresses: str) -> "list[AddressInfo]":
    return [
        (socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 443))
        for address in addresses
    ]


class Lookups:
    """A DNS whose answers change from one lookup to the next, as a rebinding attacker's does."""

    def __init__(self, *rounds: list[str]) -> None:
        self.rounds = list(rounds)
        self.hosts: list[str] = []

    async def __call__(self, host: str, port: int) -> "list[AddressInfo]":
        self.hosts.append(host)
        return answers(*self.rounds.pop(0))


async def test_one_private_address_among_public_ones_refuses_the_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING"), pytest.raises(TargetRefusedError, match="not a public address"):
        await permitted_addresses(
            "mixed.example", 443, allow_private=False, resolve=Lookups(["8.8.8.8", "10.0.0.1"])
        )
    assert "resolves to 10.0.0.1" in caplog.text  # the private one, not the public one before it


async def test_the_backend_looks_the_name_up_once_and_refuses_before_connecting() -> None:
    # The first answer is private: refused with no connection tried (a connection would fail otherwise,
    # since nothing listens on port 9 of loopback, with a ConnectError rather than this refusal).
    lookups = Lookups(["127.0.0.1"], ["8.8.8.8"])
    backend = PinnedNetworkBackend(allow_private=False, resolve=lookups)
    with pytest.raises(TargetRefusedError, match="not a public address"):
        await backend.connect_tcp("rebinding.example", 9, timeout=1.0)
    assert lookups.hosts == ["rebinding.example"]


async def test_the_backend_connects_to_the_address_it_checked() -> None:
    # Nothing listens on port 9 of loopback: the refused connection shows where the backend went, to
    # the resolver's answer for a name the system cannot resolve at all.
    lookups = Lookups(["127.0.0.1"])
    backend = PinnedNetworkBackend(allow_private=True, resolve=lookups)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("only-this-resolver-knows.invalid", 9, timeout=1.0)
    assert lookups.hosts == ["only-this-resolver-knows.invalid"]


async def test_unix_sockets_are_refused() -> None:
    with pytest.raises(TargetRefusedError):
        await PinnedNetworkBackend(allow_private=True).connect_unix_socket("/var/run/docker.sock")


WEB_PORTS = frozenset({80, 443})


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.com/in", True),  # 443, the scheme's own
        ("http://hooks.example.com/in", True),  # 80
        ("https://hooks.example.com:443/in", True),
        ("https://hooks.example.com:8443/in", False),
        ("http://hooks.example.com:6379/", False),  # a Redis on a public host is still not a web server
        ("http://hooks.example.com:22/", False),
    ],
)
def test_only_the_outbound_ports_are_accepted(url: str, allowed: bool) -> None:
    if allowed:
        assert validate_subscription_url(url, allow_private=False, ports=WEB_PORTS) == url
    else:
        with pytest.raises(InvalidTargetError, match="is not one this service connects to"):
            validate_subscription_url(url, allow_private=False, ports=WEB_PORTS)
    # No ports configured: any.
    assert validate_subscription_url(url, allow_private=False, ports=None) == url


async def test_the_backend_refuses_another_port_before_looking_anything_up() -> None:
    """A redirect or a stored URL that names another port is refused at connection time too."""
    lookups = Lookups(["8.8.8.8"])
    backend = PinnedNetworkBackend(allow_private=False, resolve=lookups, ports=WEB_PORTS)
    with pytest.raises(TargetRefusedError, match="port 6379"):
        await backend.connect_tcp("hooks.example.com", 6379, timeout=1.0)
    assert lookups.hosts == []


async def test_a_refused_name_does_not_tell_the_tenant_which_address_it_resolved_to(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The message reaches the tenant (an answer, a delivery's attempt): naming the address would let anyone
    map the private names of the network the gateway sits in. The log keeps it."""
    with caplog.at_level("WARNING"), pytest.raises(TargetRefusedError) as refused:
        await permitted_addresses(
            "db.internal.example", 443, allow_private=False, resolve=Lookups(["10.12.0.7"])
        )
    assert "db.internal.example" in str(refused.value) and "not a public address" in str(refused.value)
    assert "10.12.0.7" not in str(refused.value)
    assert "10.12.0.7" in caplog.text
